//! An emulated Lepton on the VoSPI link, for fault injection on the emulated board: the
//! frames of a recording (any [`Camera`]) sent as a Lepton 3.5 sends them — 164-byte
//! packets with their CRC, 60 a segment, segment number in packet 20, four segments a
//! frame — to the real driver ([`tqc_drivers::lepton::Lepton`]) through
//! [`LinkSpi`] and [`LinkDelay`]. Faults are drawn per frame from a seed: discard
//! packets, a corrupted CRC, a skipped or a repeated packet, an invalid (repeat) segment
//! before a segment, or a frame whose last segments never come (pre-heating frames come
//! clean: the recording has no spare cold frames). A resync (the driver
//! idling chip select) makes the camera start over at its next segment.
//!
//! The link knows which recorded frame it is sending, so the board can tell the host
//! which frames the station received; the host then checks the device against the
//! host twin run on exactly those frames.

use core::cell::RefCell;

use embedded_hal::delay::DelayNs;
use embedded_hal::spi::{self, Operation, SpiDevice};
use tqc_drivers::lepton::{HEIGHT, PACKET_BYTES, PACKETS_PER_SEGMENT, SEGMENTS, WIDTH, packet_crc, packet_pixels};
use tqc_shared::inspection::InjectedFaults;
use tqc_station::{Camera, CameraError};

const PIXELS: usize = WIDTH * HEIGHT;

/// How often faults come: `permille` of the frames get one, drawn from `seed`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FaultRate {
    pub seed: u64,
    pub permille: u16,
}

/// One frame's fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    None,
    /// `n` discard packets before segment `segment`.
    Discards {
        segment: usize,
        n: u32,
    },
    /// Packet `packet` of segment `segment` with a wrong CRC.
    Crc {
        segment: usize,
        packet: usize,
    },
    Skip {
        segment: usize,
        packet: usize,
    },
    Repeat {
        segment: usize,
        packet: usize,
    },
    /// A whole segment numbered 0 (the camera repeating itself) before `segment`.
    InvalidSegment {
        segment: usize,
    },
    /// The frame ends after `segments` segments; the camera goes on with the next.
    Truncated {
        segments: usize,
    },
}

/// The link's error: the recording ended or could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinkError(pub CameraError);

impl spi::Error for LinkError {
    fn kind(&self) -> spi::ErrorKind {
        spi::ErrorKind::Other
    }
}

/// The emulated camera's state: the recorded frame being sent and where it is.
pub struct Link<'f, C> {
    source: C,
    /// A camera frame (160 × 120), the one being sent.
    frame: &'f mut [u16],
    /// Time (ms) of the frame being sent, from the clock when it was read.
    frame_ms: Option<i64>,
    /// Next packet: a discard burst first, then (segment, packet, second copy).
    segment: usize,
    packet: usize,
    repeated: bool,
    invalid_sent: bool,
    discards_left: u32,
    fault: Fault,
    rate: FaultRate,
    rng: u64,
    clock: fn() -> i64,
    pub injected: InjectedFaults,
    /// Why the source stopped, once it has.
    pub ended: Option<CameraError>,
}

impl<'f, C: Camera> Link<'f, C> {
    /// `frame` holds the frame being sent (160 × 120: the link then serves the whole of
    /// it); `clock` reads the station's time line (the source sets it as it reads a
    /// frame).
    pub fn new(source: C, frame: &'f mut [u16], rate: FaultRate, clock: fn() -> i64) -> Option<Self> {
        if frame.len() != PIXELS {
            return None;
        }
        Some(Link {
            source,
            frame,
            frame_ms: None,
            segment: 1,
            packet: 0,
            repeated: false,
            invalid_sent: false,
            discards_left: 0,
            fault: Fault::None,
            rate,
            // splitmix64 of the seed: a zero seed still gives a stream.
            rng: rate.seed ^ 0x9E37_79B9_7F4A_7C15,
            clock,
            injected: InjectedFaults::default(),
            ended: None,
        })
    }

    /// Time of the recorded frame the link sent last (or is sending).
    pub fn frame_ms(&self) -> Option<i64> {
        self.frame_ms
    }

    fn random(&mut self) -> u64 {
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> usize {
        (self.random() % n.max(1)) as usize
    }

    /// Reads the next recorded frame and draws its fault.
    fn load(&mut self) -> Result<(), LinkError> {
        if let Some(e) = self.ended {
            return Err(LinkError(e));
        }
        loop {
            match self.source.capture(self.frame) {
                Ok(()) => break,
                // A frame a real camera would not have sent.
                Err(CameraError::Lost) => self.injected.unreadable += 1,
                Err(e) => {
                    self.ended = Some(e);
                    return Err(LinkError(e));
                }
            }
        }
        self.frame_ms = Some((self.clock)());
        self.injected.frames += 1;
        (self.segment, self.packet, self.repeated, self.invalid_sent) = (1, 0, false, false);
        self.fault = Fault::None;
        // Pre-heating frames come clean: a recording holds exactly the cold frames the
        // station waits for, where a live camera would just send another.
        let cold = self.frame_ms.is_some_and(|t| t < 0);
        if !cold && self.below(1000) < self.rate.permille as usize {
            let segment = 1 + self.below(SEGMENTS as u64);
            let packet = self.below(PACKETS_PER_SEGMENT as u64);
            self.fault = match self.below(6) {
                0 => Fault::Discards {
                    segment,
                    n: 1 + self.below(20) as u32,
                },
                1 => Fault::Crc { segment, packet },
                2 => Fault::Skip { segment, packet },
                3 => Fault::Repeat { segment, packet },
                4 => Fault::InvalidSegment { segment },
                _ => Fault::Truncated {
                    segments: self.below(SEGMENTS as u64),
                },
            };
        }
        self.discards_left = match self.fault {
            Fault::Discards { segment: 1, n } => n,
            _ => 0,
        };
        Ok(())
    }

    /// Moves past the current packet (and into the next segment or frame).
    fn advance(&mut self) {
        self.packet += 1;
        if self.packet < PACKETS_PER_SEGMENT {
            return;
        }
        self.packet = 0;
        self.repeated = false;
        if let Fault::InvalidSegment { segment } = self.fault
            && segment == self.segment
            && !self.invalid_sent
        {
            // That was the invalid segment; the real one follows.
            self.invalid_sent = true;
            return;
        }
        self.segment += 1;
        let truncated = matches!(self.fault, Fault::Truncated { segments } if self.segment > segments.max(1));
        if self.segment > SEGMENTS || truncated {
            if truncated {
                self.injected.truncated += 1;
            }
            self.segment = 0; // next packet loads the next frame
            return;
        }
        if let Fault::Discards { segment, n } = self.fault
            && segment == self.segment
        {
            self.discards_left = n;
        }
    }

    /// The next packet the camera sends.
    fn next_packet(&mut self, out: &mut [u8]) -> Result<(), LinkError> {
        if self.segment == 0 || self.frame_ms.is_none() {
            self.load()?;
        }
        let mut p = [0u8; PACKET_BYTES];
        if self.discards_left > 0 {
            self.discards_left -= 1;
            self.injected.discards += 1;
            p[0] = 0x0F;
            p[1] = 0xFF;
            copy(&p, out);
            return Ok(());
        }
        let (segment, number) = (self.segment, self.packet);
        if let Fault::Skip { segment: s, packet } = self.fault
            && (s, packet) == (segment, number)
        {
            self.injected.skipped += 1;
            self.fault = Fault::None;
            self.advance();
            return self.next_packet(out);
        }
        let invalid = matches!(self.fault, Fault::InvalidSegment { segment: s } if s == segment && !self.invalid_sent);
        let t = if invalid { 0 } else { segment as u16 };
        let id = if number == 20 { t << 12 | 20 } else { number as u16 };
        p[0..2].copy_from_slice(&id.to_be_bytes());
        if let Some(pixels) = self.frame.get(packet_pixels(segment, number)) {
            for (b, px) in p[4..].chunks_exact_mut(2).zip(pixels) {
                b.copy_from_slice(&px.to_be_bytes());
            }
        }
        let mut crc = packet_crc(&p);
        if let Fault::Crc { segment: s, packet } = self.fault
            && (s, packet) == (segment, number)
            && !invalid
        {
            self.injected.crc_errors += 1;
            self.fault = Fault::None;
            crc ^= 0x5A5A;
        }
        if invalid && number == 0 {
            self.injected.invalid_segments += 1;
        }
        p[2..4].copy_from_slice(&crc.to_be_bytes());
        copy(&p, out);
        match self.fault {
            Fault::Repeat { segment: s, packet } if (s, packet) == (segment, number) && !self.repeated && !invalid => {
                // Sent again next time.
                self.repeated = true;
                self.injected.repeated += 1;
            }
            _ => self.advance(),
        }
        Ok(())
    }

    /// Chip select idled: the camera starts over at its next segment.
    fn resync(&mut self) {
        self.injected.resyncs += 1;
        self.discards_left = 0;
        if self.segment == 0 {
            return;
        }
        if self.packet != 0 || self.repeated {
            self.packet = PACKETS_PER_SEGMENT - 1;
            self.repeated = false;
            self.advance();
        }
    }
}

fn copy(packet: &[u8; PACKET_BYTES], out: &mut [u8]) {
    for (o, b) in out.iter_mut().zip(packet.iter()) {
        *o = *b;
    }
}

/// The VoSPI side of a [`Link`].
pub struct LinkSpi<'l, 'f, C>(pub &'l RefCell<Link<'f, C>>);

impl<C> spi::ErrorType for LinkSpi<'_, '_, C> {
    type Error = LinkError;
}

impl<C: Camera> SpiDevice for LinkSpi<'_, '_, C> {
    fn transaction(&mut self, operations: &mut [Operation<'_, u8>]) -> Result<(), LinkError> {
        // The driver holds the SPI and the delay apart and never calls one from the other.
        let Ok(mut link) = self.0.try_borrow_mut() else {
            return Err(LinkError(CameraError::Failed));
        };
        for op in operations {
            if let Operation::Read(buf) = op {
                link.next_packet(buf)?;
            }
        }
        Ok(())
    }
}

/// The driver's delay: a resync idle restarts the camera's stream.
pub struct LinkDelay<'l, 'f, C>(pub &'l RefCell<Link<'f, C>>);

impl<C: Camera> DelayNs for LinkDelay<'_, '_, C> {
    fn delay_ns(&mut self, _: u32) {}
    fn delay_ms(&mut self, ms: u32) {
        if ms >= tqc_drivers::lepton::RESYNC_MS
            && let Ok(mut link) = self.0.try_borrow_mut()
        {
            link.resync();
        }
    }
}
