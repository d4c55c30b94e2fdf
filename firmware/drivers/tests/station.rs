//! Lamp interlock, LEDs and trigger against mocked pins.

use embedded_hal_mock::eh1::digital::{Mock as Pin, State, Transaction as T};
use tqc_drivers::station::*;

#[test]
fn the_lamp_never_outlives_its_limit() {
    let t = [T::set(State::Low), T::set(State::High), T::set(State::Low)];
    let mut lamp = Lamp::new(Pin::new(&t), 30_000).unwrap();
    lamp.on(1_000).unwrap();
    assert!(lamp.is_on());
    assert!(!lamp.service(30_999).unwrap());
    assert!(lamp.service(31_000).unwrap(), "trips at the limit");
    assert!(!lamp.is_on() && lamp.tripped());
    // Refused until reset, without touching the pin.
    assert_eq!(lamp.on(40_000), Err(LampError::Interlock));
    lamp.destroy().done();
    // After a reset it works again; a normal off clears the timer.
    let t = [
        T::set(State::Low),
        T::set(State::High),
        T::set(State::Low),
        T::set(State::High),
    ];
    let mut lamp = Lamp::new(Pin::new(&t), 100).unwrap();
    lamp.on(0).unwrap();
    lamp.off().unwrap();
    assert!(!lamp.service(1_000).unwrap());
    lamp.reset_interlock();
    lamp.on(2_000).unwrap();
    assert!(!lamp.service(2_050).unwrap());
    lamp.destroy().done();
}

#[test]
fn leds_show_exactly_one_indication() {
    let pins = |states: &[State]| -> Vec<T> { states.iter().map(|s| T::set(*s)).collect() };
    use State::{High as H, Low as L};
    let mut leds = Leds::new(
        Pin::new(&pins(&[H, L])),
        Pin::new(&pins(&[L, L])),
        Pin::new(&pins(&[L, H])),
        Pin::new(&pins(&[L, L])),
    );
    leds.show(Indication::Pass).unwrap();
    leds.show(Indication::Retest).unwrap();
    let (mut g, mut r, mut a, mut b) = leds.destroy();
    for p in [&mut g, &mut r, &mut a, &mut b] {
        p.done();
    }
}

#[test]
fn trigger_debounces_bounces_and_reports_once() {
    use State::{High as H, Low as L};
    // Low long enough to arm (a trigger held at power-up never fires), a bouncing press,
    // a steady press, a release.
    let reads = [L, L, H, L, H, H, H, L, L, L];
    let t: Vec<T> = reads.iter().map(|s| T::get(*s)).collect();
    let mut trig = Trigger::new(Pin::new(&t), 20, 0);
    let times = [0, 25, 30, 35, 40, 45, 60, 65, 70, 90];
    let fired: Vec<bool> = times.iter().map(|&ms| trig.poll(ms).unwrap()).collect();
    // High since 40 ms: stable at 60 → reported once, at the 60 ms sample.
    assert_eq!(
        fired,
        [false, false, false, false, false, false, true, false, false, false]
    );
    trig.destroy().done();
}
