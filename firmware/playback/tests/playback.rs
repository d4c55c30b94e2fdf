//! Playback of recordings in the trainer's `.npy` layout, from memory.

use tqc_playback::{LampSwitch, NpyError, Playback, PlaybackClock, RecordingError, Source, Timeline};
use tqc_station::{Camera, CameraError, Clock};

struct Mem {
    bytes: Vec<u8>,
    at: usize,
}

impl Source for Mem {
    fn read_exact(&mut self, buf: &mut [u8]) -> Result<(), NpyError> {
        let end = self.at + buf.len();
        let src = self.bytes.get(self.at..end).ok_or(NpyError::Io)?;
        buf.copy_from_slice(src);
        self.at = end;
        Ok(())
    }
    fn seek(&mut self, pos: u64) -> Result<(), NpyError> {
        self.at = pos as usize;
        Ok(())
    }
}

/// An .npy file as numpy writes it (version 1, header padded to 64 bytes).
fn npy(descr: &str, shape: &[usize], data: &[u8], fortran: bool) -> Mem {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let shape = if dims.len() == 1 {
        format!("({},)", dims[0])
    } else {
        format!("({})", dims.join(", "))
    };
    let order = if fortran { "True" } else { "False" };
    let mut dict = format!("{{'descr': '{descr}', 'fortran_order': {order}, 'shape': {shape}, }}");
    while (10 + dict.len() + 1) % 64 != 0 {
        dict.push(' ');
    }
    dict.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend_from_slice(&(dict.len() as u16).to_le_bytes());
    bytes.extend_from_slice(dict.as_bytes());
    bytes.extend_from_slice(data);
    Mem { bytes, at: 0 }
}

fn f32s(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}
fn f64s(v: &[f64]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Five 2×3 frames at 0.5 s, two before the heating; frame k reads 293 + k kelvin, and
/// frame 3 has a NaN.
fn recording() -> (Mem, Mem) {
    let mut px = Vec::new();
    for k in 0..5 {
        for p in 0..6 {
            px.push(if k == 3 && p == 4 {
                f32::NAN
            } else {
                293.0 + k as f32 + p as f32 * 0.004
            });
        }
    }
    let times = [-1.0, -0.5, 0.0, 0.5, 1.0];
    (
        npy("<f4", &[5, 2, 3], &f32s(&px), false),
        npy("<f8", &[5], &f64s(&times), false),
    )
}

#[test]
fn frames_come_in_order_as_centikelvin_on_the_recordings_time_line() {
    let line = Timeline::new();
    let (f, t) = recording();
    let (mut cam, rec) = Playback::open(f, t, 2, 3, &line).unwrap();
    assert_eq!((rec.frames, rec.preheat_frames, rec.period_ms), (5, 2, 500));
    let mut clock = PlaybackClock {
        timeline: &line,
        cycles: || 7,
    };
    let mut frame = [0u16; 6];
    cam.capture(&mut frame).unwrap();
    assert_eq!(clock.now_ms(), -1000);
    assert_eq!(frame, [29300, 29300, 29301, 29301, 29302, 29302]);
    assert_eq!(clock.cycles(), 7);
    cam.capture(&mut frame).unwrap();
    assert_eq!(clock.now_ms(), -500);
    cam.capture(&mut frame).unwrap();
    assert_eq!((clock.now_ms(), frame[0]), (0, 29500));
    // The NaN frame is lost, the clock still moves to its time.
    assert_eq!(cam.capture(&mut frame), Err(CameraError::Lost));
    assert_eq!(clock.now_ms(), 500);
    cam.capture(&mut frame).unwrap();
    assert_eq!((clock.now_ms(), frame[0]), (1000, 29700));
    assert_eq!(cam.capture(&mut frame), Err(CameraError::Ended));
}

#[test]
fn switching_the_lamp_on_skips_the_remaining_cold_frames_and_starts_the_heating_clock() {
    struct Led(bool);
    impl embedded_hal::digital::ErrorType for Led {
        type Error = core::convert::Infallible;
    }
    impl embedded_hal::digital::OutputPin for Led {
        fn set_high(&mut self) -> Result<(), Self::Error> {
            self.0 = true;
            Ok(())
        }
        fn set_low(&mut self) -> Result<(), Self::Error> {
            self.0 = false;
            Ok(())
        }
    }
    use embedded_hal::digital::OutputPin;
    let line = Timeline::new();
    let (f, t) = recording();
    let (mut cam, _) = Playback::open(f, t, 2, 3, &line).unwrap();
    let mut frame = [0u16; 6];
    cam.capture(&mut frame).unwrap();
    let mut lamp = LampSwitch {
        pin: Led(false),
        timeline: &line,
    };
    lamp.set_high().unwrap();
    assert!(lamp.pin.0 && line.lamp_is_on());
    assert_eq!(line.now_ms(), 0);
    cam.capture(&mut frame).unwrap();
    assert_eq!((line.now_ms(), frame[0]), (0, 29500), "frame at −0.5 s skipped");
}

#[test]
fn raw_tlinear_counts_pass_through() {
    let line = Timeline::new();
    let counts: Vec<u8> = [30000u16, 30001, 1, 2, 3, 4, 5, 6]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let f = npy("<u2", &[2, 2, 2], &counts, false);
    let t = npy("<f4", &[2], &f32s(&[-0.1, 0.2]), false);
    let (mut cam, _) = Playback::open(f, t, 2, 2, &line).unwrap();
    let mut frame = [0u16; 4];
    cam.capture(&mut frame).unwrap();
    assert_eq!(frame, [30000, 30001, 1, 2]);
    assert_eq!(line.now_ms(), -100);
}

#[test]
fn bad_recordings_are_named() {
    let line = Timeline::new();
    let frames = || npy("<f4", &[2, 2, 3], &f32s(&[293.0; 12]), false);
    let times = |v: &[f64]| npy("<f8", &[v.len()], &f64s(v), false);
    let open = |f, t| Playback::open(f, t, 2, 3, &line).map(|_| ()).unwrap_err();
    let mut junk = frames();
    junk.bytes[0] = b'P';
    assert_eq!(open(junk, times(&[-1.0, 0.0])), RecordingError::Frames(NpyError::Magic));
    assert_eq!(
        open(npy("<f4", &[2, 2, 3], &f32s(&[293.0; 12]), true), times(&[-1.0, 0.0])),
        RecordingError::Frames(NpyError::FortranOrder)
    );
    assert_eq!(
        open(npy("<i4", &[2, 2, 3], &[0; 48], false), times(&[-1.0, 0.0])),
        RecordingError::Frames(NpyError::Dtype)
    );
    assert_eq!(
        open(npy("<f4", &[2, 3, 2], &f32s(&[293.0; 12]), false), times(&[-1.0, 0.0])),
        RecordingError::FrameShape { height: 3, width: 2 }
    );
    assert_eq!(
        open(frames(), times(&[-1.0, 0.0, 1.0])),
        RecordingError::TimesLength { frames: 2, times: 3 }
    );
    assert_eq!(
        open(frames(), times(&[0.0, 0.0])),
        RecordingError::TimesOrder { index: 1 }
    );
    assert_eq!(
        open(frames(), times(&[-1.0, f64::NAN])),
        RecordingError::TimesOrder { index: 1 }
    );
    assert_eq!(open(frames(), times(&[0.0, 1.0])), RecordingError::NoPreheat);
    let mut cut = times(&[-1.0, 0.0]);
    cut.bytes.truncate(cut.bytes.len() - 3);
    assert_eq!(open(frames(), cut), RecordingError::Times(NpyError::Io));
}

#[test]
fn a_truncated_frame_file_fails_the_camera_instead_of_inventing_pixels() {
    let line = Timeline::new();
    let mut f = npy("<f4", &[2, 2, 3], &f32s(&[293.0; 12]), false);
    f.bytes.truncate(f.bytes.len() - 4);
    let t = npy("<f8", &[2], &f64s(&[-1.0, 0.0]), false);
    let (mut cam, _) = Playback::open(f, t, 2, 3, &line).unwrap();
    let mut frame = [0u16; 6];
    cam.capture(&mut frame).unwrap();
    assert_eq!(cam.capture(&mut frame), Err(CameraError::Failed));
}
