//! The stack's high-water mark: cortex-m-rt paints the stack region with `0xCCCC_CCCC`
//! before `main` (feature `paint-stack`); the deepest word no longer painted is as deep
//! as the stack has ever been.

unsafe extern "C" {
    // The stack region of memory.x: `_stack_end` its lowest address, `_stack_start` one
    // past its highest.
    static _stack_end: u32;
    static _stack_start: u32;
}

const PAINT: u32 = 0xCCCC_CCCC;

/// (bytes of stack ever used, bytes of the stack region).
pub fn high_water() -> (usize, usize) {
    let bottom = &raw const _stack_end;
    let top = &raw const _stack_start;
    let size = top as usize - bottom as usize;
    let words = size / 4;
    let mut untouched = 0;
    while untouched < words {
        // SAFETY: `bottom + untouched` lies inside the stack region, below the live stack
        // (the scan stops at the first word in use, which is above every word scanned).
        if unsafe { bottom.add(untouched).read_volatile() } != PAINT {
            break;
        }
        untouched += 1;
    }
    (size - untouched * 4, size)
}
