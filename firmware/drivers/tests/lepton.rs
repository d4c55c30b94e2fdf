//! The Lepton driver against mocked buses.

use embedded_hal::i2c::ErrorKind as I2cErrorKind;
use embedded_hal_mock::eh1::delay::{CheckedDelay, NoopDelay, Transaction as Delay};
use embedded_hal_mock::eh1::i2c::{Mock as I2cMock, Transaction as I2cT};
use embedded_hal_mock::eh1::spi::{Mock as SpiMock, Transaction as SpiT};
use tqc_drivers::lepton::*;

/// Pixel value the fake camera sends at (row, col) of frame `f`.
fn pixel(f: u16, row: usize, col: usize) -> u16 {
    29315 + f * 7 + (row * 3 + col) as u16
}

fn packet(number: usize, segment: usize, f: u16) -> Vec<u8> {
    let mut p = [0u8; PACKET_BYTES];
    let t = if number == 20 { segment as u16 } else { 0 };
    let id = (t << 12) | number as u16;
    p[0..2].copy_from_slice(&id.to_be_bytes());
    let row = (segment.max(1) - 1) * 30 + number / 2;
    for i in 0..80 {
        let col = (number % 2) * 80 + i;
        p[4 + 2 * i..6 + 2 * i].copy_from_slice(&pixel(f, row, col).to_be_bytes());
    }
    let crc = packet_crc(&p);
    p[2..4].copy_from_slice(&crc.to_be_bytes());
    p.to_vec()
}

fn discard() -> Vec<u8> {
    let mut p = vec![0xAB; PACKET_BYTES];
    p[0] = 0x0F;
    p[1] = 0x00;
    p
}

fn segment(s: usize, f: u16) -> Vec<Vec<u8>> {
    (0..60).map(|n| packet(n, s, f)).collect()
}

fn spi(packets: &[Vec<u8>]) -> SpiMock<u8> {
    let mut t = Vec::new();
    for p in packets {
        t.push(SpiT::transaction_start());
        t.push(SpiT::read_vec(p.clone()));
        t.push(SpiT::transaction_end());
    }
    SpiMock::new(&t)
}

fn check_frame(frame: &[u16], f: u16) {
    for row in 0..HEIGHT {
        for col in 0..WIDTH {
            assert_eq!(frame[row * WIDTH + col], pixel(f, row, col), "row {row} col {col}");
        }
    }
}

fn finish(lepton: Lepton<SpiMock<u8>, I2cMock, CheckedDelay>) {
    let (mut s, mut i, mut d) = lepton.destroy();
    s.done();
    i.done();
    d.done();
}

#[test]
fn reads_a_valid_frame_after_discard_packets() {
    let mut packets = vec![discard(), discard(), discard()];
    for s in 1..=4 {
        packets.extend(segment(s, 1));
    }
    let mut cam = Lepton::new(spi(&packets), I2cMock::new(&[]), CheckedDelay::new(&[]));
    let mut frame = vec![0u16; WIDTH * HEIGHT];
    let stats = cam.read_frame(&mut frame).unwrap();
    check_frame(&frame, 1);
    assert_eq!(stats.discards, 3);
    assert_eq!(stats.packets, 243);
    assert_eq!((stats.crc_errors, stats.resyncs), (0, 0));
    finish(cam);
}

#[test]
fn crc_error_resyncs_and_recovers() {
    let mut packets = segment(1, 1)[..10].to_vec();
    let mut bad = packet(10, 1, 1);
    bad[50] ^= 0x40;
    packets.push(bad);
    for s in 1..=4 {
        packets.extend(segment(s, 2));
    }
    let mut cam = Lepton::new(
        spi(&packets),
        I2cMock::new(&[]),
        CheckedDelay::new(&[Delay::delay_ms(RESYNC_MS)]),
    );
    let mut frame = vec![0u16; WIDTH * HEIGHT];
    let stats = cam.read_frame(&mut frame).unwrap();
    check_frame(&frame, 2);
    assert_eq!((stats.crc_errors, stats.resyncs), (1, 1));
    finish(cam);
}

#[test]
fn out_of_sequence_packet_resyncs() {
    let mut packets = segment(1, 1)[..5].to_vec();
    packets.push(packet(9, 1, 1));
    for s in 1..=4 {
        packets.extend(segment(s, 3));
    }
    let mut cam = Lepton::new(
        spi(&packets),
        I2cMock::new(&[]),
        CheckedDelay::new(&[Delay::delay_ms(RESYNC_MS)]),
    );
    let mut frame = vec![0u16; WIDTH * HEIGHT];
    let stats = cam.read_frame(&mut frame).unwrap();
    check_frame(&frame, 3);
    assert_eq!((stats.crc_errors, stats.resyncs), (0, 1));
    finish(cam);
}

#[test]
fn reading_that_begins_mid_frame_waits_for_segment_one_and_never_tears_a_frame() {
    // Segments 3 and 4 of frame 4, then frame 5: a frame of 5's segments 1–2 and 4's
    // segments 3–4 would mix two camera frames 115 ms apart.
    let mut packets = Vec::new();
    for s in [3, 4] {
        packets.extend(segment(s, 4));
    }
    for s in 1..=4 {
        packets.extend(segment(s, 5));
    }
    let mut cam = Lepton::new(spi(&packets), I2cMock::new(&[]), CheckedDelay::new(&[]));
    let mut frame = vec![0u16; WIDTH * HEIGHT];
    let stats = cam.read_frame(&mut frame).unwrap();
    check_frame(&frame, 5);
    assert_eq!(stats.lost_segments, 2);
    assert_eq!(stats.packets, 6 * 60);
    finish(cam);
}

#[test]
fn a_lost_segment_restarts_the_frame_and_invalid_segments_are_dropped() {
    let mut packets = Vec::new();
    packets.extend(segment(1, 5));
    packets.extend(segment(2, 5));
    // Segment 3 of that frame never comes: the camera is already on the next frame.
    // An invalid segment (T = 0) cut short: its packet 0 after packet 20 restarts in step.
    packets.extend(segment(0, 6)[..21].to_vec());
    for s in 1..=4 {
        packets.extend(segment(s, 6));
    }
    let mut cam = Lepton::new(spi(&packets), I2cMock::new(&[]), CheckedDelay::new(&[]));
    let mut frame = vec![0u16; WIDTH * HEIGHT];
    let stats = cam.read_frame(&mut frame).unwrap();
    check_frame(&frame, 6);
    assert_eq!(stats.lost_segments, 2);
    assert_eq!(stats.invalid_segments, 1);
    finish(cam);
}

#[test]
fn gives_up_when_no_frame_completes() {
    let packets: Vec<Vec<u8>> = (0..10).map(|_| discard()).collect();
    let mut cam = Lepton::new(spi(&packets), I2cMock::new(&[]), CheckedDelay::new(&[])).with_budgets(10, 3);
    let mut frame = vec![0u16; WIDTH * HEIGHT];
    assert_eq!(
        cam.read_frame(&mut frame),
        Err(Error::NoFrame {
            resyncs: 0,
            crc_errors: 0
        })
    );
    assert_eq!(
        cam.read_frame(&mut frame[1..]),
        Err(Error::FrameBuffer(WIDTH * HEIGHT - 1))
    );
    finish(cam);
}

fn status(value: u16) -> I2cT {
    I2cT::write_read(CCI_ADDRESS, vec![0x00, 0x02], value.to_be_bytes().to_vec())
}

fn reg_write(reg: u16, value: u16) -> I2cT {
    let mut v = reg.to_be_bytes().to_vec();
    v.extend_from_slice(&value.to_be_bytes());
    I2cT::write(CCI_ADDRESS, v)
}

#[test]
fn enables_radiometry_and_tlinear_and_runs_ffc() {
    let mut t = Vec::new();
    for cmd in [CMD_RAD_ENABLE_SET, CMD_RAD_TLINEAR_ENABLE_SET] {
        t.extend([
            status(0x0006),
            reg_write(REG_DATA0, 1),
            reg_write(REG_DATA0 + 2, 0),
            reg_write(REG_DATA_LENGTH, 2),
        ]);
        t.extend([reg_write(REG_COMMAND, cmd), status(0x0007), status(0x0006)]);
    }
    t.extend([
        status(0x0006),
        reg_write(REG_DATA_LENGTH, 0),
        reg_write(REG_COMMAND, CMD_SYS_RUN_FFC),
        status(0x0006),
    ]);
    let mut cam = Lepton::new(
        SpiMock::new(&[]),
        I2cMock::new(&t),
        CheckedDelay::new(&[Delay::delay_ms(1), Delay::delay_ms(1)]),
    );
    cam.enable_radiometric_tlinear().unwrap();
    cam.run_ffc().unwrap();
    finish(cam);
}

#[test]
fn cci_errors_nack_and_busy_timeout() {
    // The camera reports error −2 (bad argument) in STATUS's high byte.
    let t = [
        status(0x0006),
        reg_write(REG_DATA_LENGTH, 0),
        reg_write(REG_COMMAND, CMD_SYS_RUN_FFC),
        status(0xFE06),
    ];
    let mut cam = Lepton::new(SpiMock::new(&[]), I2cMock::new(&t), NoopDelay::new());
    assert_eq!(cam.run_ffc(), Err(Error::Cci(-2)));
    let (mut s, mut i, _) = cam.destroy();
    s.done();
    i.done();
    // No acknowledge from the camera: the bus error comes back as it was.
    let t = [
        I2cT::write_read(CCI_ADDRESS, vec![0, 2], vec![0, 0]).with_error(I2cErrorKind::NoAcknowledge(
            embedded_hal::i2c::NoAcknowledgeSource::Address,
        )),
    ];
    let mut cam = Lepton::new(SpiMock::new(&[]), I2cMock::new(&t), NoopDelay::new());
    assert_eq!(
        cam.run_ffc(),
        Err(Error::I2c(I2cErrorKind::NoAcknowledge(
            embedded_hal::i2c::NoAcknowledgeSource::Address
        )))
    );
    let (mut s, mut i, _) = cam.destroy();
    s.done();
    i.done();
    // Busy for ever: a timeout after the poll budget.
    let t: Vec<I2cT> = (0..3).map(|_| status(0x0001)).collect();
    let mut cam = Lepton::new(SpiMock::new(&[]), I2cMock::new(&t), NoopDelay::new()).with_budgets(10, 3);
    assert_eq!(cam.run_ffc(), Err(Error::CciTimeout));
    let (mut s, mut i, _) = cam.destroy();
    s.done();
    i.done();
}
