//! CCI command sequences against a camera whose every reply comes from the input: STATUS
//! words (busy, error codes), NACKs and bus errors on any transfer. Commands must end
//! with a result (ok, timeout, the camera's error code, the bus error), never a panic,
//! and within their polling budget.
#![no_main]

use embedded_hal::delay::DelayNs;
use embedded_hal::i2c::{self, I2c, Operation};
use embedded_hal::spi::{self, SpiDevice};
use libfuzzer_sys::fuzz_target;
use tqc_drivers::lepton::{CMD_RAD_ENABLE_SET, Lepton};

struct Camera<'a> {
    script: &'a [u8],
    at: usize,
    transfers: u32,
}

#[derive(Debug)]
struct Nack;

impl i2c::Error for Nack {
    fn kind(&self) -> i2c::ErrorKind {
        i2c::ErrorKind::NoAcknowledge(i2c::NoAcknowledgeSource::Address)
    }
}

impl i2c::ErrorType for Camera<'_> {
    type Error = Nack;
}

impl I2c for Camera<'_> {
    fn transaction(&mut self, _: u8, operations: &mut [Operation<'_>]) -> Result<(), Nack> {
        self.transfers += 1;
        // The first byte of each transfer decides whether it is acknowledged; an
        // exhausted script answers "not busy, no error".
        let ack = self.script.get(self.at).is_none_or(|b| b & 0xE0 != 0xE0);
        self.at += 1;
        if !ack {
            return Err(Nack);
        }
        for op in operations {
            if let Operation::Read(buf) = op {
                for b in buf.iter_mut() {
                    *b = self.script.get(self.at).copied().unwrap_or(0);
                    self.at += 1;
                }
            }
        }
        Ok(())
    }
}

struct NoVideo;

impl spi::ErrorType for NoVideo {
    type Error = spi::ErrorKind;
}

impl SpiDevice for NoVideo {
    fn transaction(&mut self, _: &mut [spi::Operation<'_, u8>]) -> Result<(), spi::ErrorKind> {
        Err(spi::ErrorKind::Other)
    }
}

struct NoDelay;

impl DelayNs for NoDelay {
    fn delay_ns(&mut self, _: u32) {}
}

const POLLS: u32 = 50;

fuzz_target!(|data: &[u8]| {
    let words: Vec<u16> = data.iter().take(16).map(|&b| u16::from(b)).collect();
    let camera = Camera {
        script: data,
        at: 0,
        transfers: 0,
    };
    let mut lepton = Lepton::new(NoVideo, camera, NoDelay).with_budgets(10, POLLS);
    let _ = lepton.command(CMD_RAD_ENABLE_SET, &words);
    let _ = lepton.enable_radiometric_tlinear();
    let _ = lepton.run_ffc();
    let (_, camera, _) = lepton.destroy();
    // Per command: two waits of at most POLLS reads, at most 16 + 2 writes; three
    // commands here, the TLinear one being two.
    assert!(
        camera.transfers <= 4 * (2 * POLLS + 18),
        "{} transfers",
        camera.transfers
    );
});
