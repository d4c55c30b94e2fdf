//! VoSPI frame assembly fed a camera that misbehaves as the fuzzer says: every packet is
//! built from the input (discard packets, corrupted CRCs, packet numbers that skip,
//! repeat or restart, segment numbers 0–7 in packet 20, arbitrary pixels), with correct
//! CRCs unless the input asks otherwise, so whole frames are reachable. The reader must
//! never panic, must end within its packet budget, and a frame it returns must have
//! read at least the 240 packets of four segments.
#![no_main]

use std::convert::Infallible;

use embedded_hal::delay::DelayNs;
use embedded_hal::i2c::{self, I2c};
use embedded_hal::spi::{self, Operation, SpiDevice};
use libfuzzer_sys::fuzz_target;
use tqc_drivers::lepton::{HEIGHT, Lepton, PACKET_BYTES, PACKETS_PER_SEGMENT, WIDTH, packet_crc};

/// The camera's side of the link: the next packet number and segment, and the script.
struct Camera<'a> {
    script: &'a [u8],
    at: usize,
    number: u16,
    segment: u16,
    served: u32,
}

#[derive(Debug)]
struct Ended;

impl spi::Error for Ended {
    fn kind(&self) -> spi::ErrorKind {
        spi::ErrorKind::Other
    }
}

impl Camera<'_> {
    fn byte(&mut self) -> Option<u8> {
        let b = *self.script.get(self.at)?;
        self.at += 1;
        Some(b)
    }

    fn packet(&mut self, buf: &mut [u8]) -> Result<(), Ended> {
        let kind = self.byte().ok_or(Ended)?;
        let mut packet = [0u8; PACKET_BYTES];
        let fill = self.byte().unwrap_or(0);
        for (i, p) in packet[4..].iter_mut().enumerate() {
            *p = fill.wrapping_add(i as u8);
        }
        let id = match kind & 0x07 {
            // A discard packet.
            1 => 0x0F00 | u16::from(fill),
            // A packet number of the fuzzer's choosing.
            2 => u16::from_be_bytes([self.byte().unwrap_or(0), self.byte().unwrap_or(0)]) & 0x7FFF,
            // The camera restarts its segment.
            3 => {
                self.number = 0;
                0
            }
            // It skips a packet.
            4 => {
                self.number = (self.number + 2) % PACKETS_PER_SEGMENT as u16;
                self.number
            }
            _ => self.number,
        };
        let mut id = id;
        if kind & 0x07 != 1 && id & 0x0FFF == 20 {
            let t = if kind & 0x08 != 0 {
                u16::from(self.byte().unwrap_or(0) & 7)
            } else {
                self.segment
            };
            id = (id & 0x0FFF) | t << 12;
        }
        packet[0..2].copy_from_slice(&id.to_be_bytes());
        let crc = packet_crc(&packet);
        let crc = if kind & 0x10 != 0 { crc ^ 0x5A5A } else { crc };
        packet[2..4].copy_from_slice(&crc.to_be_bytes());
        if kind & 0x07 != 1 {
            self.number += 1;
            if self.number as usize == PACKETS_PER_SEGMENT {
                self.number = 0;
                self.segment = self.segment % 4 + 1;
            }
        }
        let n = buf.len().min(PACKET_BYTES);
        buf[..n].copy_from_slice(&packet[..n]);
        self.served += 1;
        Ok(())
    }
}

impl spi::ErrorType for Camera<'_> {
    type Error = Ended;
}

impl SpiDevice for Camera<'_> {
    fn transaction(&mut self, operations: &mut [Operation<'_, u8>]) -> Result<(), Ended> {
        for op in operations {
            if let Operation::Read(buf) = op {
                self.packet(buf)?;
            }
        }
        Ok(())
    }
}

/// No CCI traffic in a frame read.
struct NoCci;

impl i2c::ErrorType for NoCci {
    type Error = Infallible;
}

impl I2c for NoCci {
    fn transaction(&mut self, _: u8, _: &mut [i2c::Operation<'_>]) -> Result<(), Infallible> {
        Ok(())
    }
}

struct NoDelay;

impl DelayNs for NoDelay {
    fn delay_ns(&mut self, _: u32) {}
}

const BUDGET: u32 = 2_000;

fuzz_target!(|data: &[u8]| {
    let camera = Camera {
        script: data,
        at: 0,
        number: 0,
        segment: 1,
        served: 0,
    };
    let mut lepton = Lepton::new(camera, NoCci, NoDelay).with_budgets(BUDGET, 10);
    let mut frame = vec![0u16; WIDTH * HEIGHT];
    for _ in 0..3 {
        match lepton.read_frame(&mut frame) {
            Ok(stats) => {
                assert!(stats.packets >= 240 && stats.packets <= BUDGET, "{stats:?}");
            }
            Err(_) => break,
        }
    }
    let (camera, _, _) = lepton.destroy();
    assert!(camera.served <= 3 * BUDGET);
});
