//! The real ThermoQC board: a NUCLEO-H743ZI (STM32H743ZI, Cortex-M7 at 480 MHz) with a
//! FLIR Lepton 3.5, a lamp relay, three LEDs and a start button.
//!
//! Board glue only: pins, clocks, the cycle clock and the watchdog. Everything above it —
//! the Lepton driver, the lamp interlock, the state machine, features, engine, verdict —
//! is the code the emulated board runs in QEMU. defmt over RTT.
//!
//! The glue is written on the register definitions (`stm32-metapac`), with every wait
//! bounded and every error a value, so the image links no `core::panicking` function
//! (`cargo xtask size` checks): a HAL's assertions on its configuration, its `unwrap`s
//! and a logger that panics on re-entry would each be a way for the board to stop
//! instead of answering RETEST.
//!
//! | function | pin | NUCLEO-H743ZI |
//! | --- | --- | --- |
//! | Lepton VoSPI SCK | PA5 | CN7 D13 |
//! | Lepton VoSPI MISO | PA6 | CN7 D12 |
//! | Lepton VoSPI CS | PD14 | CN7 D10 |
//! | Lepton CCI SCL | PB8 | CN7 D15 |
//! | Lepton CCI SDA | PB9 | CN7 D14 |
//! | lamp relay | PF14 | CN10 D4 |
//! | PASS LED (green) | PB0 | LD1 |
//! | FAIL LED (red) | PB14 | LD3 |
//! | RETEST LED (amber) | PE1 | LD2 |
//! | BUSY LED | PD15 | CN7 D9 |
//! | start trigger | PC13 | B1 (user button) |
#![no_std]
#![no_main]

mod gpio;
mod i2c;
mod rcc;
mod rtt;
mod spi;

use cortex_m::peripheral::DWT;
use cortex_m_rt::entry;
use embedded_hal_bus::spi::ExclusiveDevice;
use panic_probe as _;
use static_cell::ConstStaticCell;
use stm32_metapac::IWDG1;
use stm32_metapac::gpio::vals::{Ospeedr, Pupdr};
use stm32_metapac::iwdg::vals::{Key, Pr};
use tqc_drivers::lepton::{self, Lepton};
use tqc_drivers::station::{Lamp, Leds, Trigger};
use tqc_station::{Buffers, Clock, Hardware, LeptonCamera, Station, StationConfig, Watchdog, work_bytes};

use gpio::{Input, Output, port};

const PIXELS: usize = lepton::WIDTH * lepton::HEIGHT;
const FEATURE_BYTES: usize = PIXELS * 8;
/// The frame, the running sums, then the engine's arena, then the verdict's stack.
const WORK: usize = work_bytes(PIXELS);

static BUFFERS: ConstStaticCell<Buffers<PIXELS, FEATURE_BYTES, WORK>> = ConstStaticCell::new(Buffers::new());
static MODEL: &[u8] = include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../onnx_models/thermonet2.tqm"));

/// The DWT cycle counter, extended to 64 bits (it wraps every 8.9 s at 480 MHz; the
/// station reads it at least once per frame and the idle loop every millisecond).
struct CycleClock {
    last: u32,
    high: u64,
    /// Cycles per millisecond of the clock the part runs at (never 0).
    per_ms: u64,
}

impl Clock for CycleClock {
    fn cycles(&mut self) -> u64 {
        let now = DWT::cycle_count();
        if now < self.last {
            self.high += 1 << 32;
        }
        self.last = now;
        self.high + now as u64
    }
    fn now_ms(&mut self) -> i64 {
        (self.cycles() / self.per_ms.max(1)) as i64
    }
}

/// The independent watchdog (IWDG1, from the 32 kHz LSI): 2 s without a feed resets the
/// part. Once started it cannot be stopped.
struct Iwdg;

impl Iwdg {
    fn start() -> Self {
        IWDG1.kr().write(|w| w.set_key(Key::START));
        IWDG1.kr().write(|w| w.set_key(Key::ENABLE));
        // 32 kHz / 64 = 500 Hz: 1000 ticks are 2 s.
        IWDG1.pr().write(|w| w.set_pr(Pr::DIVIDE_BY64));
        IWDG1.rlr().write(|w| w.set_rl(1000 - 1));
        // The values reach the LSI domain within a few of its cycles. Bounded: without a
        // running LSI they never do, and the watchdog could not count either.
        for _ in 0..1_000_000u32 {
            let sr = IWDG1.sr().read();
            if !sr.pvu() && !sr.rvu() {
                break;
            }
        }
        IWDG1.kr().write(|w| w.set_key(Key::RESET));
        Iwdg
    }
}

impl Watchdog for Iwdg {
    fn feed(&mut self) {
        IWDG1.kr().write(|w| w.set_key(Key::RESET));
    }
}

#[entry]
fn main() -> ! {
    let clock_hz = match rcc::init() {
        Ok(()) => rcc::SYS_HZ,
        Err(e) => {
            // The part runs on, slower: inspection takes longer, the verdicts hold.
            defmt::error!("clock set-up failed at {}: running from the HSI", e);
            rcc::RESET_HZ
        }
    };
    let Some(mut core) = cortex_m::Peripherals::take() else {
        // Only if `main` ran twice: start over rather than stop.
        cortex_m::peripheral::SCB::sys_reset()
    };
    core.DCB.enable_trace();
    core.DWT.enable_cycle_counter();
    defmt::info!("ThermoQC station, NUCLEO-H743ZI");

    gpio::enable_ports();
    // VoSPI: SCK PA5, MISO PA6 (AF5); chip select PD14, idle high.
    gpio::alternate::<5>(port::A, 5, false, Ospeedr::VERY_HIGH_SPEED);
    gpio::alternate::<6>(port::A, 5, false, Ospeedr::VERY_HIGH_SPEED);
    let cs = Output::<14>::new(port::D, true, Ospeedr::VERY_HIGH_SPEED);
    // CCI: SCL PB8, SDA PB9 (AF4, open drain; the camera board pulls the lines up).
    gpio::alternate::<8>(port::B, 4, true, Ospeedr::MEDIUM_SPEED);
    gpio::alternate::<9>(port::B, 4, true, Ospeedr::MEDIUM_SPEED);
    // The chip-select pin's error type is Infallible.
    let Ok(vospi) = ExclusiveDevice::new_no_delay(spi::Spi1::new(), cs);
    let delay = cortex_m::delay::Delay::new(core.SYST, clock_hz);
    let mut camera = Lepton::new(vospi, i2c::I2c1::new(), delay);
    if let Err(e) = camera.enable_radiometric_tlinear() {
        // The station then RETESTs every part: a camera without TLinear reads no kelvin.
        defmt::error!("Lepton: radiometry/TLinear not enabled: {}", defmt::Debug2Format(&e));
    }

    let mut clock = CycleClock {
        last: 0,
        high: 0,
        per_ms: u64::from(clock_hz / 1000),
    };
    let cfg = StationConfig {
        // A Lepton 3.5 sends a new frame every 115 ms: three missed are a hole.
        preheat_frames: 10,
        max_frame_gap_ms: 350,
        ..StationConfig::DEFAULT
    };
    let leds = Leds::new(
        Output::<0>::new(port::B, false, Ospeedr::LOW_SPEED),
        Output::<14>::new(port::B, false, Ospeedr::LOW_SPEED),
        Output::<1>::new(port::E, false, Ospeedr::LOW_SPEED),
        Output::<15>::new(port::D, false, Ospeedr::LOW_SPEED),
    );
    let lamp = match Lamp::new(
        Output::<14>::new(port::F, false, Ospeedr::LOW_SPEED),
        cfg.heating_ms + 2_000,
    ) {
        Ok(lamp) => lamp,
        // The relay pin cannot fail to go low (its error type is Infallible); were the
        // driver to refuse anyway, start over rather than run without an interlock.
        Err(_) => cortex_m::peripheral::SCB::sys_reset(),
    };
    let mut trigger = Trigger::new(Input::<13>::new(port::C, Pupdr::PULL_DOWN), 30, clock.now_ms() as u32);
    let watchdog = Iwdg::start();

    let hw = Hardware {
        camera: LeptonCamera(camera),
        clock,
        lamp,
        leds,
        watchdog,
    };
    // `main` runs once, so the buffers are always there; `try_take` keeps the
    // already-taken panic out of the image.
    let Some(buffers) = BUFFERS.try_take() else {
        defmt::error!("station buffers already taken");
        loop {
            cortex_m::asm::wfi();
        }
    };
    let mut station = Station::new(hw, buffers.memory(), MODEL, cfg);
    loop {
        let hw = station.hardware();
        let now = hw.clock.now_ms();
        // The interlock holds whatever the state machine does.
        let _ = tqc_station::Lamp::service(&mut hw.lamp, now);
        hw.watchdog.feed();
        if trigger.poll(now as u32).unwrap_or(false) {
            let report = station.inspect();
            defmt::info!("verdict {} (fault: {})", report.verdict, report.fault);
        }
    }
}
