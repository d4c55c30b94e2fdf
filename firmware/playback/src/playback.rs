//! A recording played back as the station's camera and clock.
//!
//! The emulated station runs on the recording's time line: each frame sets the clock to
//! its recorded time, and switching the lamp on moves the clock to the recording's
//! heating start (t = 0; no real-time waiting in emulation). Pre-heating frames left
//! when the lamp switches on are skipped — they were taken before the lamp lit. A frame
//! holding a non-finite value is unreadable: the camera reports it lost, as a real one
//! reports a frame that fails its CRC.

use core::sync::atomic::{AtomicBool, AtomicI32, Ordering};

use embedded_hal::digital::{ErrorType, OutputPin};
use tqc_shared::features::{kelvin_to_centikelvin, seconds_to_ms};
use tqc_station::{Camera, CameraError, Clock};

use crate::npy::{Dtype, NpyError, NpyHeader, Source, read_header};

/// The emulated station's time line (ms; i32 spans ±24 days).
pub struct Timeline {
    now_ms: AtomicI32,
    lamp: AtomicBool,
}

impl Timeline {
    pub const fn new() -> Self {
        Timeline {
            now_ms: AtomicI32::new(i32::MIN),
            lamp: AtomicBool::new(false),
        }
    }

    pub fn now_ms(&self) -> i64 {
        self.now_ms.load(Ordering::Relaxed) as i64
    }

    fn set(&self, ms: i64) {
        self.now_ms
            .store(ms.clamp(i32::MIN as i64, i32::MAX as i64) as i32, Ordering::Relaxed);
    }

    pub fn lamp_is_on(&self) -> bool {
        self.lamp.load(Ordering::Relaxed)
    }

    /// The lamp switched: on, time jumps to the recording's heating start if it is not
    /// there yet.
    pub fn switch_lamp(&self, on: bool) {
        if on && self.now_ms() < 0 {
            self.set(0);
        }
        self.lamp.store(on, Ordering::Relaxed);
    }
}

impl Default for Timeline {
    fn default() -> Self {
        Self::new()
    }
}

/// Why a recording cannot be played.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordingError {
    Frames(NpyError),
    Times(NpyError),
    /// `sequence.npy` is not frames × height × width of this camera.
    FrameShape {
        height: u64,
        width: u64,
    },
    /// `times.npy` does not hold one time per frame.
    TimesLength {
        frames: u64,
        times: u64,
    },
    /// Time `index` is not finite or not after the previous one.
    TimesOrder {
        index: u32,
    },
    /// No frame before the heating: no cold reference.
    NoPreheat,
}

impl core::fmt::Display for RecordingError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            RecordingError::Frames(e) => write!(f, "sequence.npy: {e}"),
            RecordingError::Times(e) => write!(f, "times.npy: {e}"),
            RecordingError::FrameShape { height, width } => write!(
                f,
                "sequence.npy: frames of {height}×{width} pixels do not fit the camera"
            ),
            RecordingError::TimesLength { frames, times } => {
                write!(f, "times.npy holds {times} times for {frames} frames")
            }
            RecordingError::TimesOrder { index } => {
                write!(f, "times.npy: time {index} is not finite or not increasing")
            }
            RecordingError::NoPreheat => f.write_str("times.npy: no frame before the heating starts"),
        }
    }
}

/// What the recording holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Recording {
    pub frames: u32,
    /// Frames before the heating starts.
    pub preheat_frames: u32,
    /// Mean time between frames.
    pub period_ms: u32,
    pub first_ms: i64,
    pub last_ms: i64,
}

/// Bytes converted per read (four rows of f32 on a Lepton).
const CHUNK: usize = 2560;

/// The recording as a [`Camera`].
pub struct Playback<'t, F, T> {
    frames: F,
    times: T,
    frame_header: NpyHeader,
    time_header: NpyHeader,
    pixels: usize,
    next: u64,
    count: u64,
    timeline: &'t Timeline,
    chunk: [u8; CHUNK],
}

fn read_time<T: Source>(times: &mut T, dtype: Dtype) -> Result<f64, NpyError> {
    let mut b = [0u8; 8];
    let b = &mut b[..dtype.size()];
    times.read_exact(b)?;
    Ok(dtype.value(b))
}

impl<'t, F: Source, T: Source> Playback<'t, F, T> {
    /// Opens a recording for a camera of `height` × `width` pixels and checks its times.
    pub fn open(
        mut frames: F,
        mut times: T,
        height: usize,
        width: usize,
        timeline: &'t Timeline,
    ) -> Result<(Self, Recording), RecordingError> {
        let frame_header = read_header(&mut frames).map_err(RecordingError::Frames)?;
        let time_header = read_header(&mut times).map_err(RecordingError::Times)?;
        let (n, h, w) = match frame_header.shape[..] {
            [n, h, w] => (n, h, w),
            _ => return Err(RecordingError::Frames(NpyError::Shape)),
        };
        if (h, w) != (height as u64, width as u64) {
            return Err(RecordingError::FrameShape { height: h, width: w });
        }
        if time_header.shape.len() != 1 || time_header.dtype == Dtype::U16 {
            return Err(RecordingError::Times(NpyError::Shape));
        }
        if time_header.len() != n {
            return Err(RecordingError::TimesLength {
                frames: n,
                times: time_header.len(),
            });
        }
        let (mut preheat, mut first, mut last) = (0u32, 0i64, 0i64);
        let mut previous = f64::NEG_INFINITY;
        for k in 0..n {
            let t = read_time(&mut times, time_header.dtype).map_err(RecordingError::Times)?;
            if !t.is_finite() || t <= previous {
                return Err(RecordingError::TimesOrder { index: k as u32 });
            }
            previous = t;
            let ms = seconds_to_ms(t);
            if k == 0 {
                first = ms;
            }
            last = ms;
            if t < 0.0 {
                preheat += 1;
            }
        }
        if preheat == 0 {
            return Err(RecordingError::NoPreheat);
        }
        times.seek(time_header.data_offset).map_err(RecordingError::Times)?;
        let period_ms = ((last - first) / (n as i64 - 1).max(1)).clamp(1, u32::MAX as i64) as u32;
        let recording = Recording {
            frames: n as u32,
            preheat_frames: preheat,
            period_ms,
            first_ms: first,
            last_ms: last,
        };
        let playback = Playback {
            frames,
            times,
            frame_header,
            time_header,
            pixels: height * width,
            next: 0,
            count: n,
            timeline,
            chunk: [0; CHUNK],
        };
        Ok((playback, recording))
    }

    /// Reads frame `k` into `frame`; false when a value is not finite.
    fn read_frame(&mut self, k: u64, frame: &mut [u16]) -> Result<bool, NpyError> {
        let size = self.frame_header.dtype.size();
        let offset = self.frame_header.data_offset + k * (self.pixels * size) as u64;
        self.frames.seek(offset)?;
        let per_chunk = CHUNK / size;
        let mut finite = true;
        let dtype = self.frame_header.dtype;
        for out in frame.chunks_mut(per_chunk) {
            let bytes = self.chunk.get_mut(..out.len() * size).ok_or(NpyError::Header)?;
            self.frames.read_exact(bytes)?;
            for (o, b) in out.iter_mut().zip(bytes.chunks_exact(size)) {
                *o = match dtype {
                    Dtype::U16 => u16::from_le_bytes([b[0], b[1]]),
                    _ => {
                        let kelvin = dtype.value(b) as f32;
                        finite &= kelvin.is_finite();
                        kelvin_to_centikelvin(kelvin)
                    }
                };
            }
        }
        Ok(finite)
    }
}

impl<F: Source, T: Source> Camera for Playback<'_, F, T> {
    fn capture(&mut self, frame: &mut [u16]) -> Result<(), CameraError> {
        if frame.len() != self.pixels {
            return Err(CameraError::Failed);
        }
        loop {
            if self.next >= self.count {
                return Err(CameraError::Ended);
            }
            let k = self.next;
            self.next += 1;
            let t = read_time(&mut self.times, self.time_header.dtype).map_err(|_| CameraError::Failed)?;
            let ms = seconds_to_ms(t);
            if ms < 0 && self.timeline.lamp_is_on() {
                continue;
            }
            let finite = self.read_frame(k, frame).map_err(|_| CameraError::Failed)?;
            self.timeline.set(ms);
            return if finite { Ok(()) } else { Err(CameraError::Lost) };
        }
    }
}

/// The station clock on the recording's time line; cycles from the board.
pub struct PlaybackClock<'t> {
    pub timeline: &'t Timeline,
    pub cycles: fn() -> u64,
}

impl Clock for PlaybackClock<'_> {
    fn now_ms(&mut self) -> i64 {
        self.timeline.now_ms()
    }
    fn cycles(&mut self) -> u64 {
        (self.cycles)()
    }
}

/// The lamp relay pin of the emulated board: drives `pin` (an LED) and tells the time
/// line when the heating starts.
pub struct LampSwitch<'t, P> {
    pub pin: P,
    pub timeline: &'t Timeline,
}

impl<P: ErrorType> ErrorType for LampSwitch<'_, P> {
    type Error = P::Error;
}

impl<P: OutputPin> OutputPin for LampSwitch<'_, P> {
    fn set_high(&mut self) -> Result<(), P::Error> {
        self.pin.set_high()?;
        self.timeline.switch_lamp(true);
        Ok(())
    }
    fn set_low(&mut self) -> Result<(), P::Error> {
        self.pin.set_low()?;
        self.timeline.switch_lamp(false);
        Ok(())
    }
}
