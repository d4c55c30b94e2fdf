//! The Lepton's frame assembly over random fault schedules: a camera streaming frames
//! (some of them repeats with invalid segment numbers) with discard packets, corrupted
//! CRCs, skipped, repeated and cut-off packets, and reading that starts anywhere in the
//! stream. After a resync the camera starts over at its next segment, as a Lepton does
//! once chip select has idled. Checked against what was injected:
//! - a frame returned is one camera frame, every pixel of it, never a mix of two;
//! - the first frame sent whole and clean is never missed;
//! - the counters are what the camera served.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::convert::Infallible;
use std::rc::Rc;

use embedded_hal::delay::DelayNs;
use embedded_hal::spi::{ErrorType, Operation, SpiDevice};
use embedded_hal_mock::eh1::i2c::Mock as I2cMock;
use proptest::prelude::*;
use tqc_drivers::lepton::*;

/// What the camera sends at (row, col) of camera frame `f`: distinct for every frame.
fn pixel(f: usize, row: usize, col: usize) -> u16 {
    ((f * 7919 + row * WIDTH + col) % 65536) as u16
}

#[derive(Clone, Copy, Debug)]
enum Fault {
    None,
    Corrupt(usize),
    Skip(usize),
    Repeat(usize),
    CutAfter(usize),
}

#[derive(Clone, Debug)]
struct CameraFrame {
    /// False: a repeat, its segments numbered 0 (invalid).
    valid: bool,
    faults: [Fault; 4],
    discards_before: [usize; 4],
}

impl CameraFrame {
    fn clean(&self) -> bool {
        self.valid && self.faults.iter().all(|f| matches!(f, Fault::None))
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Discard,
    Corrupt,
    Packet { number: usize },
}

struct Stream {
    packets: VecDeque<([u8; PACKET_BYTES], Kind, usize)>,
    served: usize,
    discards: u32,
    corrupt: u32,
    resyncs: u32,
    /// Index of the camera frame each served packet came from.
    frames_served: Vec<usize>,
}

fn packet(f: usize, segment: usize, number: usize, t: usize) -> [u8; PACKET_BYTES] {
    let mut p = [0u8; PACKET_BYTES];
    let id = if number == 20 {
        (t as u16) << 12 | 20
    } else {
        number as u16
    };
    p[0..2].copy_from_slice(&id.to_be_bytes());
    let row = (segment - 1) * 30 + number / 2;
    for i in 0..80 {
        let col = (number % 2) * 80 + i;
        p[4 + 2 * i..6 + 2 * i].copy_from_slice(&pixel(f, row, col).to_be_bytes());
    }
    let crc = packet_crc(&p);
    p[2..4].copy_from_slice(&crc.to_be_bytes());
    p
}

fn discard() -> [u8; PACKET_BYTES] {
    let mut p = [0x5Au8; PACKET_BYTES];
    p[0] = 0x0F;
    p[1] = 0xFF;
    p
}

/// The stream the camera sends, from packet `start` on.
fn script(frames: &[CameraFrame], start: usize) -> VecDeque<([u8; PACKET_BYTES], Kind, usize)> {
    let mut out = Vec::new();
    for (f, frame) in frames.iter().enumerate() {
        for s in 1..=SEGMENTS {
            for _ in 0..frame.discards_before[s - 1] {
                out.push((discard(), Kind::Discard, f));
            }
            let t = if frame.valid { s } else { 0 };
            for n in 0..PACKETS_PER_SEGMENT {
                let p = packet(f, s, n, t);
                match frame.faults[s - 1] {
                    Fault::Corrupt(at) if at == n => {
                        let mut bad = p;
                        bad[2] ^= 0x5A;
                        out.push((bad, Kind::Corrupt, f));
                    }
                    Fault::Skip(at) if at == n => {}
                    Fault::Repeat(at) if at == n => {
                        out.push((p, Kind::Packet { number: n }, f));
                        out.push((p, Kind::Packet { number: n }, f));
                    }
                    Fault::CutAfter(at) if n > at => {}
                    _ => out.push((p, Kind::Packet { number: n }, f)),
                }
            }
        }
    }
    out.into_iter().skip(start).collect()
}

#[derive(Clone)]
struct Spi(Rc<RefCell<Stream>>);

impl ErrorType for Spi {
    type Error = Infallible;
}

impl SpiDevice for Spi {
    fn transaction(&mut self, operations: &mut [Operation<'_, u8>]) -> Result<(), Infallible> {
        let mut s = self.0.borrow_mut();
        for op in operations {
            if let Operation::Read(buf) = op {
                // Past the script, the camera has nothing new: discard packets.
                let (bytes, kind, f) = s.packets.pop_front().unwrap_or((discard(), Kind::Discard, usize::MAX));
                buf.copy_from_slice(&bytes[..buf.len()]);
                s.served += 1;
                s.frames_served.push(f);
                match kind {
                    Kind::Discard => s.discards += 1,
                    Kind::Corrupt => s.corrupt += 1,
                    Kind::Packet { .. } => {}
                }
            }
        }
        Ok(())
    }
}

/// Chip select idling for a resync: the camera starts over at its next segment.
struct Delay(Rc<RefCell<Stream>>);

impl DelayNs for Delay {
    fn delay_ns(&mut self, _: u32) {}
    fn delay_ms(&mut self, ms: u32) {
        assert_eq!(ms, RESYNC_MS, "the reader only idles to resync");
        let mut s = self.0.borrow_mut();
        s.resyncs += 1;
        while let Some((_, kind, _)) = s.packets.front() {
            if *kind == (Kind::Packet { number: 0 }) {
                break;
            }
            s.packets.pop_front();
        }
    }
}

fn fault() -> impl Strategy<Value = Fault> {
    let at = 0..PACKETS_PER_SEGMENT;
    prop_oneof![
        6 => Just(Fault::None),
        1 => at.clone().prop_map(Fault::Corrupt),
        1 => at.clone().prop_map(Fault::Skip),
        1 => at.clone().prop_map(Fault::Repeat),
        1 => (0..PACKETS_PER_SEGMENT - 1).prop_map(Fault::CutAfter),
    ]
}

fn camera_frame() -> impl Strategy<Value = CameraFrame> {
    (
        prop::bool::weighted(0.8),
        prop::array::uniform4(fault()),
        prop::array::uniform4(prop_oneof![3 => Just(0usize), 1 => 1usize..4]),
    )
        .prop_map(|(valid, faults, discards_before)| CameraFrame {
            valid,
            faults,
            discards_before,
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn frames_are_whole_camera_frames_and_counters_match_the_stream(
        frames in prop::collection::vec(camera_frame(), 1..6),
        start in prop_oneof![1 => Just(0usize), 3 => 0usize..300],
    ) {
        let stream = Rc::new(RefCell::new(Stream {
            packets: script(&frames, start),
            served: 0,
            discards: 0,
            corrupt: 0,
            resyncs: 0,
            frames_served: Vec::new(),
        }));
        let budget = 8 * 6 * SEGMENTS * PACKETS_PER_SEGMENT;
        let mut cam = Lepton::new(Spi(stream.clone()), I2cMock::new(&[]), Delay(stream.clone()))
            .with_budgets(budget as u32, 10);
        let mut frame = vec![0u16; WIDTH * HEIGHT];
        let got = cam.read_frame(&mut frame);
        let (_, mut i2c, _) = cam.destroy();
        i2c.done();
        let s = stream.borrow();

        // The first frame the camera sent whole and clean, all of it after `start`.
        let first_clean = frames.iter().enumerate().position(|(f, fr)| {
            fr.clean() && script(&frames[..f], 0).len() >= start
        });
        match got {
            Ok(stats) => {
                // One camera frame, every pixel of it, and a valid one.
                let f = (0..frames.len())
                    .find(|&f| frame[0] == pixel(f, 0, 0))
                    .expect("the first pixel comes from a camera frame");
                prop_assert!(frames[f].valid, "frame {f} is a repeat with invalid segments");
                for row in 0..HEIGHT {
                    for col in 0..WIDTH {
                        prop_assert_eq!(frame[row * WIDTH + col], pixel(f, row, col), "frame {} row {} col {}", f, row, col);
                    }
                }
                if let Some(clean) = first_clean {
                    prop_assert!(f <= clean, "returned frame {f}, frame {clean} came whole before it");
                }
                prop_assert_eq!(stats.packets as usize, s.served);
                prop_assert_eq!(stats.discards, s.discards);
                prop_assert_eq!(stats.crc_errors, s.corrupt);
                prop_assert_eq!(stats.resyncs, s.resyncs);
            }
            Err(Error::NoFrame { resyncs, crc_errors }) => {
                prop_assert!(first_clean.is_none(), "frame {:?} came whole and clean and was missed", first_clean);
                prop_assert_eq!(s.served, budget);
                prop_assert_eq!(crc_errors, s.corrupt);
                prop_assert_eq!(resyncs, s.resyncs);
            }
            Err(e) => prop_assert!(false, "{e:?}"),
        }
    }
}
