//! The emulated Lepton link against the real driver: clean, it delivers every recorded
//! frame exactly; with faults, every frame the driver assembles is one recorded frame,
//! the one the link says it sent, and the driver's counters are what the link injected.

use core::cell::RefCell;
use std::sync::atomic::{AtomicI64, Ordering};

use embedded_hal::i2c::{ErrorKind, ErrorType, I2c, Operation};
use tqc_drivers::lepton::{Error, Lepton};
use tqc_playback::{FaultRate, Link, LinkDelay, LinkSpi};
use tqc_station::{Camera, CameraError};

const PIXELS: usize = 160 * 120;
const FRAMES: usize = 40;

static NOW_MS: AtomicI64 = AtomicI64::new(0);

fn now() -> i64 {
    NOW_MS.load(Ordering::Relaxed)
}

fn pixel(k: usize, i: usize) -> u16 {
    ((k * 7919 + i) % 65536) as u16
}

/// A recording of `FRAMES` frames, 100 ms apart, the first two before the heating.
struct Source {
    next: usize,
}

impl Camera for Source {
    fn capture(&mut self, frame: &mut [u16]) -> Result<(), CameraError> {
        if self.next == FRAMES {
            return Err(CameraError::Ended);
        }
        for (i, p) in frame.iter_mut().enumerate() {
            *p = pixel(self.next, i);
        }
        NOW_MS.store(self.next as i64 * 100 - 200, Ordering::Relaxed);
        self.next += 1;
        Ok(())
    }
}

struct NoCci;

impl ErrorType for NoCci {
    type Error = ErrorKind;
}

impl I2c for NoCci {
    fn transaction(&mut self, _: u8, _: &mut [Operation<'_>]) -> Result<(), ErrorKind> {
        Err(ErrorKind::Other)
    }
}

/// Every frame the driver assembles, as (recorded index, frame time); the link's counters;
/// the driver's counters over the frames it returned.
fn play(rate: FaultRate) -> (Vec<(usize, i64)>, tqc_shared::inspection::InjectedFaults, [u32; 3]) {
    let mut buffer = vec![0u16; PIXELS];
    let link = RefCell::new(Link::new(Source { next: 0 }, &mut buffer, rate, now).unwrap());
    let mut lepton = Lepton::new(LinkSpi(&link), NoCci, LinkDelay(&link));
    let mut frame = vec![0u16; PIXELS];
    let mut got = Vec::new();
    let mut counted = [0u32; 3];
    loop {
        match lepton.read_frame(&mut frame) {
            Ok(stats) => {
                let k = (0..FRAMES)
                    .find(|&k| frame[0] == pixel(k, 0))
                    .expect("a recorded frame");
                assert!(
                    frame.iter().enumerate().all(|(i, &p)| p == pixel(k, i)),
                    "frame {k} is not whole"
                );
                let ms = link.borrow().frame_ms().unwrap();
                assert_eq!(ms, k as i64 * 100 - 200, "the link names the frame it sent");
                got.push((k, ms));
                counted[0] += stats.crc_errors;
                counted[1] += stats.discards;
                counted[2] += stats.resyncs;
                // Right after a frame, the driver has seen every fault the link sent.
                let i = link.borrow().injected;
                assert_eq!(counted, [i.crc_errors, i.discards, i.resyncs]);
            }
            Err(Error::Spi(e)) => {
                assert_eq!(e.0, CameraError::Ended);
                break;
            }
            Err(e) => panic!("{e:?}"),
        }
    }
    drop(lepton);
    let injected = link.borrow().injected;
    (got, injected, counted)
}

#[test]
fn a_clean_link_delivers_every_recorded_frame() {
    let (got, injected, counted) = play(FaultRate { seed: 1, permille: 0 });
    assert_eq!(
        got.iter().map(|g| g.0).collect::<Vec<_>>(),
        (0..FRAMES).collect::<Vec<_>>()
    );
    assert_eq!(injected.frames as usize, FRAMES);
    assert_eq!(counted, [0, 0, 0]);
}

#[test]
fn with_faults_every_frame_delivered_is_one_recorded_frame_and_counters_agree() {
    let mut faults = 0;
    for seed in 0..40 {
        let (got, injected, counted) = play(FaultRate { seed, permille: 400 });
        // In order, never the same frame twice; the cold frames (t < 0) all come.
        assert!(got.windows(2).all(|w| w[0].0 < w[1].0), "seed {seed}: {got:?}");
        assert_eq!(
            &got[..2].iter().map(|g| g.0).collect::<Vec<_>>(),
            &[0, 1],
            "seed {seed}"
        );
        // Every frame sent whole and clean is delivered; only faulty frames are dropped.
        let dropped = FRAMES - got.len();
        let damaging = injected.crc_errors + injected.skipped + injected.repeated + injected.truncated;
        assert!(
            dropped as u32 <= damaging,
            "seed {seed}: {dropped} dropped, {injected:?}"
        );
        assert!(
            counted[0] <= injected.crc_errors && counted[2] <= injected.resyncs,
            "seed {seed}"
        );
        faults += damaging + injected.invalid_segments + injected.discards;
    }
    assert!(faults > 100, "{faults}");
}
