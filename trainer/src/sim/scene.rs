pub fn placeholder_scene() {}
