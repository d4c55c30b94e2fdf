//! The real ThermoQC board: a NUCLEO-H743ZI (STM32H743ZI, Cortex-M7 at 480 MHz) with a
//! FLIR Lepton 3.5, a lamp relay, three LEDs and a start button.
//!
//! Board glue only: pins, clocks, the cycle clock and the watchdog. Everything above it —
//! the Lepton driver, the lamp interlock, the state machine, features, engine, verdict —
//! is the code the emulated board runs in QEMU. defmt over RTT.
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

use cortex_m::peripheral::DWT;
use cortex_m_rt::entry;
use defmt_rtt as _;
use embassy_stm32::gpio::{Input, Level, Output, Pull, Speed};
use embassy_stm32::i2c::{self, I2c};
use embassy_stm32::spi::{self, Spi};
use embassy_stm32::time::Hertz;
use embassy_stm32::wdg::IndependentWatchdog;
use embedded_hal_bus::spi::ExclusiveDevice;
use panic_probe as _;
use static_cell::ConstStaticCell;
use tqc_drivers::lepton::{self, Lepton};
use tqc_drivers::station::{Lamp, Leds, Trigger};
use tqc_station::{Buffers, Clock, Hardware, LeptonCamera, Station, StationConfig, Watchdog, work_bytes};

const PIXELS: usize = lepton::WIDTH * lepton::HEIGHT;
const FEATURE_BYTES: usize = PIXELS * 8;
/// The frame, the running sums, then the engine's arena, then the verdict's stack.
const WORK: usize = work_bytes(PIXELS);
const CPU_HZ: u32 = 480_000_000;

static BUFFERS: ConstStaticCell<Buffers<PIXELS, FEATURE_BYTES, WORK>> = ConstStaticCell::new(Buffers::new());
static MODEL: &[u8] = include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../onnx_models/thermonet2.tqm"));

/// The DWT cycle counter, extended to 64 bits (it wraps every 8.9 s; the station reads
/// it at least once per frame and the idle loop every millisecond).
struct CycleClock {
    last: u32,
    high: u64,
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
        (self.cycles() / (CPU_HZ / 1000) as u64) as i64
    }
}

struct Iwdg<'d>(IndependentWatchdog<'d, embassy_stm32::peripherals::IWDG1>);

impl Watchdog for Iwdg<'_> {
    fn feed(&mut self) {
        self.0.pet();
    }
}

fn clocks() -> embassy_stm32::Config {
    use embassy_stm32::rcc::*;
    let mut config = embassy_stm32::Config::default();
    // HSI 64 MHz / 4 × 60 = 960 MHz VCO; P / 2 = 480 MHz system clock (VOS0).
    config.rcc.hsi = Some(HSIPrescaler::DIV1);
    config.rcc.csi = true;
    config.rcc.pll1 = Some(Pll {
        source: PllSource::HSI,
        prediv: PllPreDiv::DIV4,
        mul: PllMul::MUL60,
        fracn: None,
        divp: Some(PllDiv::DIV2),
        divq: Some(PllDiv::DIV8),
        divr: None,
    });
    config.rcc.sys = Sysclk::PLL1_P;
    config.rcc.ahb_pre = AHBPrescaler::DIV2;
    config.rcc.apb1_pre = APBPrescaler::DIV2;
    config.rcc.apb2_pre = APBPrescaler::DIV2;
    config.rcc.apb3_pre = APBPrescaler::DIV2;
    config.rcc.apb4_pre = APBPrescaler::DIV2;
    config.rcc.voltage_scale = VoltageScale::Scale0;
    config
}

#[entry]
fn main() -> ! {
    let p = embassy_stm32::init(clocks());
    let Some(mut core) = cortex_m::Peripherals::take() else {
        // Only if `main` ran twice: start over rather than stop.
        cortex_m::peripheral::SCB::sys_reset()
    };
    core.DCB.enable_trace();
    core.DWT.enable_cycle_counter();
    defmt::info!("ThermoQC station, NUCLEO-H743ZI");

    let mut spi_config = spi::Config::default();
    spi_config.mode = spi::MODE_3;
    spi_config.frequency = Hertz(16_000_000);
    let spi = Spi::new_blocking_rxonly(p.SPI1, p.PA5, p.PA6, spi_config);
    let cs = Output::new(p.PD14, Level::High, Speed::VeryHigh);
    // The chip-select pin's error type is Infallible.
    let Ok(vospi) = ExclusiveDevice::new_no_delay(spi, cs);
    let mut i2c_config = i2c::Config::default();
    i2c_config.frequency = Hertz(400_000);
    let cci = I2c::new_blocking(p.I2C1, p.PB8, p.PB9, i2c_config);
    let delay = cortex_m::delay::Delay::new(core.SYST, CPU_HZ);
    let mut camera = Lepton::new(vospi, cci, delay);
    if let Err(e) = camera.enable_radiometric_tlinear() {
        // The station then RETESTs every part: a camera without TLinear reads no kelvin.
        defmt::error!("Lepton: radiometry/TLinear not enabled: {}", defmt::Debug2Format(&e));
    }

    let mut clock = CycleClock { last: 0, high: 0 };
    let cfg = StationConfig {
        // A Lepton 3.5 sends a new frame every 115 ms: three missed are a hole.
        preheat_frames: 10,
        max_frame_gap_ms: 350,
        ..StationConfig::DEFAULT
    };
    let lamp_pin = Output::new(p.PF14, Level::Low, Speed::Low);
    let Ok(lamp) = Lamp::new(lamp_pin, cfg.heating_ms + 2_000) else {
        defmt::panic!("lamp relay pin");
    };
    let leds = Leds::new(
        Output::new(p.PB0, Level::Low, Speed::Low),
        Output::new(p.PB14, Level::Low, Speed::Low),
        Output::new(p.PE1, Level::Low, Speed::Low),
        Output::new(p.PD15, Level::Low, Speed::Low),
    );
    let mut trigger = Trigger::new(Input::new(p.PC13, Pull::Down), 30, clock.now_ms() as u32);
    let mut watchdog = IndependentWatchdog::new(p.IWDG1, 2_000_000);
    watchdog.unleash();

    let hw = Hardware {
        camera: LeptonCamera(camera),
        clock,
        lamp,
        leds,
        watchdog: Iwdg(watchdog),
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
