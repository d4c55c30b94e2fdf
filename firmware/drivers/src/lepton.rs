//! FLIR Lepton 3.5: 160 × 120 radiometric frames over VoSPI, control over CCI.
//!
//! **VoSPI** (video over SPI, mode 3, up to 20 MHz): the camera streams 164-byte packets —
//! a 2-byte ID (`xTTT NNNN NNNN NNNN`: packet number N, and in packet 20 the segment
//! number T), a 2-byte CRC, 160 bytes of payload (80 big-endian 16-bit pixels, half a row).
//! 60 packets make a segment (30 rows), four segments a frame. Packets whose ID reads
//! `xFxx` are discard packets (the camera has nothing to send yet). A segment numbered 0
//! is invalid (the camera repeating a frame) and read past. A frame is the four segments
//! of one camera frame, in order. The CRC is CRC-16/CCITT (polynomial 0x1021, initial 0) over the
//! whole packet with the ID's top nibble and the CRC field zeroed. When packet numbers
//! stop following each other (or a CRC fails) — except at a packet 0, which can only
//! start a segment — the reader has lost sync: it idles with
//! chip select deasserted for 185 ms (no SPI transaction) and starts over, as the
//! interface description prescribes.
//!
//! **CCI** (I²C address 0x2A, 16-bit big-endian registers): poll STATUS until not busy,
//! write the DATA registers and DATA LENGTH, write COMMAND, poll again, read the error
//! code in STATUS's high byte.

use embedded_hal::delay::DelayNs;
use embedded_hal::i2c::I2c;
use embedded_hal::spi::SpiDevice;

pub const WIDTH: usize = 160;
pub const HEIGHT: usize = 120;
pub const PACKET_BYTES: usize = 164;
pub const PACKETS_PER_SEGMENT: usize = 60;
pub const SEGMENTS: usize = 4;
const ROWS_PER_SEGMENT: usize = HEIGHT / SEGMENTS;
/// Chip-select idle time that resynchronizes VoSPI.
pub const RESYNC_MS: u32 = 185;

/// CCI I²C address.
pub const CCI_ADDRESS: u8 = 0x2A;
pub const REG_STATUS: u16 = 0x0002;
pub const REG_COMMAND: u16 = 0x0004;
pub const REG_DATA_LENGTH: u16 = 0x0006;
pub const REG_DATA0: u16 = 0x0008;
/// RAD module (OEM bit set): radiometry enable, set.
pub const CMD_RAD_ENABLE_SET: u16 = 0x4E11;
/// RAD module: TLinear output (0.01 K per count) enable, set.
pub const CMD_RAD_TLINEAR_ENABLE_SET: u16 = 0x4EC1;
/// SYS module: run flat-field correction.
pub const CMD_SYS_RUN_FFC: u16 = 0x0242;
/// STATUS bit 0: the camera is busy with a command.
const STATUS_BUSY: u16 = 0x0001;

const CRC16: crc::Crc<u16> = crc::Crc::<u16>::new(&crc::CRC_16_XMODEM);

/// Driver errors; bus errors are kept as they came.
#[derive(Debug, PartialEq, Eq)]
pub enum Error<SpiE, I2cE> {
    Spi(SpiE),
    I2c(I2cE),
    /// No complete frame within the packet budget (sync kept failing).
    NoFrame {
        resyncs: u32,
        crc_errors: u32,
    },
    /// The camera stayed busy beyond the polling budget.
    CciTimeout,
    /// The camera answered a command with this (negative) error code.
    Cci(i8),
    /// The caller's frame buffer is not 160 × 120.
    FrameBuffer(usize),
}

/// What happened while reading a frame (the firmware's fault counters).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FrameStats {
    pub packets: u32,
    pub discards: u32,
    pub crc_errors: u32,
    pub resyncs: u32,
    /// Segments thrown away because the frame restarted before it was complete.
    pub lost_segments: u32,
    pub invalid_segments: u32,
}

pub struct Lepton<SPI, I2C, D> {
    spi: SPI,
    i2c: I2C,
    delay: D,
    packet: [u8; PACKET_BYTES],
    /// Packets read before a frame read gives up.
    packet_budget: u32,
    /// STATUS polls before a CCI command gives up (1 ms apart).
    poll_budget: u32,
}

/// Where packet `number` (0–59) of segment `segment` (1–4) lies in a row-major frame:
/// two packets a row, half a row each.
pub fn packet_pixels(segment: usize, number: usize) -> core::ops::Range<usize> {
    let row = segment.saturating_sub(1) * ROWS_PER_SEGMENT + number / 2;
    let at = row * WIDTH + (number % 2) * (WIDTH / 2);
    at..at + WIDTH / 2
}

/// CRC of a packet as the camera computes it.
pub fn packet_crc(packet: &[u8; PACKET_BYTES]) -> u16 {
    let mut digest = CRC16.digest();
    digest.update(&[packet[0] & 0x0F, packet[1], 0, 0]);
    digest.update(&packet[4..]);
    digest.finalize()
}

impl<SPI, I2C, D> Lepton<SPI, I2C, D>
where
    SPI: SpiDevice,
    I2C: I2c,
    D: DelayNs,
{
    pub fn new(spi: SPI, i2c: I2C, delay: D) -> Self {
        Lepton {
            spi,
            i2c,
            delay,
            packet: [0; PACKET_BYTES],
            packet_budget: (SEGMENTS * PACKETS_PER_SEGMENT * 12) as u32,
            poll_budget: 1000,
        }
    }

    /// Limits packets per frame read and STATUS polls per command.
    pub fn with_budgets(mut self, packets: u32, polls: u32) -> Self {
        self.packet_budget = packets;
        self.poll_budget = polls;
        self
    }

    /// Gives the buses and the delay back.
    pub fn destroy(self) -> (SPI, I2C, D) {
        (self.spi, self.i2c, self.delay)
    }

    fn resync(&mut self, stats: &mut FrameStats) {
        stats.resyncs += 1;
        self.delay.delay_ms(RESYNC_MS);
    }

    /// Reads one complete frame (row-major, raw 16-bit pixels: centikelvin in TLinear
    /// mode) into `frame`.
    ///
    /// A frame is assembled only from segments 1, 2, 3 and 4 read in that order, one
    /// after the other, as the camera sends one frame: a frame is never made of segments
    /// of two camera frames (reading that starts at segment 3 would otherwise complete
    /// with the next frame's segments 1 and 2, a frame torn across 115 ms). A segment
    /// out of step, a resync or a new segment 1 throws the segments held away
    /// (`lost_segments`). An invalid segment (number 0: a repeat of the previous frame)
    /// is read past in step, not resynced. A packet 0 where another number was due
    /// starts the segment again without idling: it can only begin a segment.
    pub fn read_frame(&mut self, frame: &mut [u16]) -> Result<FrameStats, Error<SPI::Error, I2C::Error>> {
        if frame.len() != WIDTH * HEIGHT {
            return Err(Error::FrameBuffer(frame.len()));
        }
        let mut stats = FrameStats::default();
        // The segment the frame needs next (1–4): packets 0–19 are written to its rows
        // until packet 20 names the segment they belong to.
        let mut next = 1usize;
        let mut expected = 0usize;
        // False while the rest of a segment that is not kept is read past.
        let mut keep = true;
        while stats.packets < self.packet_budget {
            self.spi.read(&mut self.packet).map_err(Error::Spi)?;
            stats.packets += 1;
            let id = u16::from_be_bytes([self.packet[0], self.packet[1]]);
            if id & 0x0F00 == 0x0F00 {
                stats.discards += 1;
                continue;
            }
            let crc_ok = u16::from_be_bytes([self.packet[2], self.packet[3]]) == packet_crc(&self.packet);
            let number = (id & 0x0FFF) as usize;
            if !crc_ok || (number != expected && number != 0) {
                if !crc_ok {
                    stats.crc_errors += 1;
                }
                // Out of sync: idle, then the camera starts over; what was held is stale.
                self.resync(&mut stats);
                stats.lost_segments += (next - 1) as u32;
                (next, expected, keep) = (1, 0, true);
                continue;
            }
            if number == 0 {
                // A segment (re)starts: one cut short is dropped, the frame kept.
                (expected, keep) = (0, true);
            }
            if number == 20 {
                match ((id >> 12) & 0x7) as usize {
                    t if t == next => {}
                    1 => {
                        // The camera began a new frame: what was held is lost; the rows
                        // written so far move to segment 1's place.
                        stats.lost_segments += (next - 1) as u32;
                        let from = (next - 1) * ROWS_PER_SEGMENT * WIDTH;
                        if let Some((to, rest)) = frame.split_at_mut_checked(from) {
                            for (d, &s) in to.iter_mut().zip(rest.iter()).take(10 * WIDTH) {
                                *d = s;
                            }
                        }
                        next = 1;
                    }
                    2..=SEGMENTS => {
                        // Out of step (a segment missed, or reading began mid-frame):
                        // neither what was held nor this segment can make a frame.
                        stats.lost_segments += next as u32;
                        (next, keep) = (1, false);
                    }
                    _ => {
                        stats.invalid_segments += 1;
                        keep = false;
                    }
                }
            }
            if keep && let Some(dst) = frame.get_mut(packet_pixels(next, number)) {
                for (d, px) in dst.iter_mut().zip(self.packet[4..].chunks_exact(2)) {
                    *d = u16::from_be_bytes([px[0], px[1]]);
                }
            }
            expected += 1;
            if expected == PACKETS_PER_SEGMENT {
                if keep {
                    if next == SEGMENTS {
                        return Ok(stats);
                    }
                    next += 1;
                }
                (expected, keep) = (0, true);
            }
        }
        Err(Error::NoFrame {
            resyncs: stats.resyncs,
            crc_errors: stats.crc_errors,
        })
    }

    fn read_register(&mut self, reg: u16) -> Result<u16, Error<SPI::Error, I2C::Error>> {
        let mut buf = [0u8; 2];
        self.i2c
            .write_read(CCI_ADDRESS, &reg.to_be_bytes(), &mut buf)
            .map_err(Error::I2c)?;
        Ok(u16::from_be_bytes(buf))
    }

    fn write_register(&mut self, reg: u16, value: u16) -> Result<(), Error<SPI::Error, I2C::Error>> {
        let [a, b] = reg.to_be_bytes();
        let [c, d] = value.to_be_bytes();
        self.i2c.write(CCI_ADDRESS, &[a, b, c, d]).map_err(Error::I2c)
    }

    /// Polls STATUS until the camera is not busy; returns the status.
    fn wait_ready(&mut self) -> Result<u16, Error<SPI::Error, I2C::Error>> {
        for _ in 0..self.poll_budget {
            let status = self.read_register(REG_STATUS)?;
            if status & STATUS_BUSY == 0 {
                return Ok(status);
            }
            self.delay.delay_ms(1);
        }
        Err(Error::CciTimeout)
    }

    /// Runs a CCI command with `data` words (at most 16).
    pub fn command(&mut self, command: u16, data: &[u16]) -> Result<(), Error<SPI::Error, I2C::Error>> {
        self.wait_ready()?;
        for (i, &w) in data.iter().take(16).enumerate() {
            self.write_register(REG_DATA0 + 2 * i as u16, w)?;
        }
        self.write_register(REG_DATA_LENGTH, data.len().min(16) as u16)?;
        self.write_register(REG_COMMAND, command)?;
        let status = self.wait_ready()?;
        let code = (status >> 8) as u8 as i8;
        if code != 0 { Err(Error::Cci(code)) } else { Ok(()) }
    }

    /// Radiometry on, TLinear output (0.01 K per count) on: frames are centikelvin.
    pub fn enable_radiometric_tlinear(&mut self) -> Result<(), Error<SPI::Error, I2C::Error>> {
        // 32-bit enums travel as two words, least significant first.
        self.command(CMD_RAD_ENABLE_SET, &[1, 0])?;
        self.command(CMD_RAD_TLINEAR_ENABLE_SET, &[1, 0])
    }

    /// Triggers a flat-field correction (the shutter closes briefly).
    pub fn run_ffc(&mut self) -> Result<(), Error<SPI::Error, I2C::Error>> {
        self.command(CMD_SYS_RUN_FFC, &[])
    }
}
