//! The classes of the per-pixel map, in the order the model's outputs, the label files and
//! the blob's class names use.

use serde::{Deserialize, Serialize};

/// What a pixel shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Class {
    /// Sound material.
    Sound = 0,
    /// An in-depth defect (hole, delamination, inclusion) below the inspected face.
    Subsurface = 1,
    /// A defect of the inspected face itself.
    Surface = 2,
}

impl Class {
    /// How many classes there are.
    pub const COUNT: usize = 3;
    /// Every class, in index order.
    pub const ALL: [Class; Self::COUNT] = [Class::Sound, Class::Subsurface, Class::Surface];
    /// Every class's name, in index order (as the blob and `meta.json` store them).
    pub const NAMES: [&'static str; Self::COUNT] = ["sound", "subsurface", "surface"];

    /// The label value (`labels.npy`, class map).
    pub const fn index(self) -> u8 {
        self as u8
    }

    pub const fn name(self) -> &'static str {
        Self::NAMES[self as usize]
    }

    /// The class of a label value, if it is one.
    pub fn from_index(v: u8) -> Option<Class> {
        Self::ALL.get(v as usize).copied()
    }
}

impl std::fmt::Display for Class {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_indices_and_serde_agree() {
        for (i, c) in Class::ALL.iter().enumerate() {
            assert_eq!(c.index() as usize, i);
            assert_eq!(Class::from_index(i as u8), Some(*c));
            assert_eq!(serde_json::to_string(c).unwrap(), format!("\"{}\"", c.name()));
        }
        assert_eq!(Class::from_index(3), None);
    }
}
