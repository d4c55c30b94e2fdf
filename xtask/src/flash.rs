//! `cargo xtask flash`: build the real board's image and write it with probe-rs (the
//! library), reset, and optionally follow the defmt log over RTT.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use probe_rs::flashing::{ElfLoader, ElfOptions, download_file};
use probe_rs::probe::DebugProbeSelector;
use probe_rs::probe::list::Lister;
use probe_rs::rtt::Rtt;
use probe_rs::{Permissions, Session};

/// What the selection sees of a probe (probe-rs' own type cannot be built in tests).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbeEntry {
    pub name: String,
    pub vendor_id: u16,
    pub product_id: u16,
    pub serial: Option<String>,
}

impl std::fmt::Display for ProbeEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({:04x}:{:04x}", self.name, self.vendor_id, self.product_id)?;
        if let Some(s) = &self.serial {
            write!(f, ":{s}")?;
        }
        f.write_str(")")
    }
}

const UDEV_HINT: &str = "On Linux, a probe that is listed but cannot be opened usually lacks a udev \
rule: install probe-rs' rules (https://probe.rs/docs/getting-started/probe-setup/), then \
`sudo udevadm control --reload && sudo udevadm trigger` and re-plug the probe.";

/// Picks the probe to use: the one `wanted` names, or the only one connected.
pub fn select_probe(probes: &[ProbeEntry], wanted: Option<&str>) -> Result<usize> {
    let list = || probes.iter().map(|p| format!("\n  {p}")).collect::<String>();
    match wanted {
        Some(text) => {
            let selector: DebugProbeSelector = text
                .parse()
                .map_err(|e| anyhow::anyhow!("--probe {text}: expected VID:PID[:SERIAL] in hex ({e})"))?;
            let found: Vec<usize> = probes
                .iter()
                .enumerate()
                .filter(|(_, p)| {
                    p.vendor_id == selector.vendor_id
                        && p.product_id == selector.product_id
                        && selector
                            .serial_number
                            .as_ref()
                            .is_none_or(|s| p.serial.as_deref() == Some(s.as_str()))
                })
                .map(|(i, _)| i)
                .collect();
            match found[..] {
                [i] => Ok(i),
                [] if probes.is_empty() => bail!("no debug probe matches --probe {text}: no probe is connected"),
                [] => bail!("no debug probe matches --probe {text}; connected:{}", list()),
                _ => bail!(
                    "several probes match --probe {text}; add the serial number (VID:PID:SERIAL):{}",
                    list()
                ),
            }
        }
        None => match probes.len() {
            0 => bail!(
                "no debug probe found: connect the NUCLEO-H743ZI's ST-LINK (CN1, USB) and check \
                 `lsusb` lists it (ST-LINK V3: 0483:374e/374f). {UDEV_HINT}"
            ),
            1 => Ok(0),
            _ => bail!(
                "several debug probes are connected; choose one with --probe VID:PID[:SERIAL]:{}",
                list()
            ),
        },
    }
}

pub struct FlashArgs<'a> {
    pub elf: &'a Path,
    pub chip: &'a str,
    pub log: bool,
}

/// Lists the probes; chooses one (before any build, so a missing probe says so at once).
pub fn choose_probe(wanted: Option<&str>) -> Result<probe_rs::probe::DebugProbeInfo> {
    let probes = Lister::new().list_all();
    let entries: Vec<ProbeEntry> = probes
        .iter()
        .map(|p| ProbeEntry {
            name: p.identifier.clone(),
            vendor_id: p.vendor_id,
            product_id: p.product_id,
            serial: p.serial_number.clone(),
        })
        .collect();
    let i = select_probe(&entries, wanted)?;
    Ok(probes[i].clone())
}

pub fn flash(info: &probe_rs::probe::DebugProbeInfo, args: &FlashArgs<'_>) -> Result<()> {
    let probe = info.open().map_err(|e| {
        let text = e.to_string();
        if text.to_lowercase().contains("permission") || text.contains("could not be opened") {
            anyhow::anyhow!("cannot open {info}: {text}.\n{UDEV_HINT}")
        } else {
            anyhow::anyhow!("cannot open {info}: {text}")
        }
    })?;
    let mut session = probe.attach(args.chip, Permissions::default()).map_err(|e| {
        anyhow::anyhow!(
            "the chip does not respond as {} ({e}).\nCheck that the board is powered, that the \
             probe is wired to SWDIO, SWCLK and GND (on a NUCLEO the on-board ST-LINK is, with \
             the CN4 jumpers on), that --chip names your part, and that the firmware does not \
             sleep the debug port; holding RESET while starting the flash helps with the last.",
            args.chip
        )
    })?;
    println!("flashing {} onto {} through {info}", args.elf.display(), args.chip);
    let started = Instant::now();
    download_file(&mut session, args.elf, ElfLoader(ElfOptions::default()))
        .with_context(|| format!("writing {} to flash", args.elf.display()))?;
    session.core(0)?.reset().context("resetting the core")?;
    println!("flashed and reset in {:.1?}", started.elapsed());
    if args.log {
        follow_log(&mut session, args.elf)?;
    }
    Ok(())
}

/// Prints the board's defmt log from RTT channel 0 until Ctrl-C.
fn follow_log(session: &mut Session, elf: &Path) -> Result<()> {
    let bytes = std::fs::read(elf).with_context(|| format!("cannot read {}", elf.display()))?;
    let table = defmt_decoder::Table::parse(&bytes)
        .map_err(|e| anyhow::anyhow!("{}: {e}", elf.display()))?
        .context("the image has no defmt table")?;
    let mut decoder = table.new_stream_decoder();
    let mut core = session.core(0)?;
    let mut rtt = None;
    for _ in 0..50 {
        match Rtt::attach(&mut core) {
            Ok(r) => {
                rtt = Some(r);
                break;
            }
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
    let mut rtt = rtt.context("no RTT control block found in the target's RAM (is the board's RTT logger linked?)")?;
    println!("defmt log over RTT (Ctrl-C to stop):");
    let mut buf = [0u8; 4096];
    loop {
        let n = match rtt.up_channel(0) {
            Some(ch) => ch.read(&mut core, &mut buf)?,
            None => bail!("the target has no RTT up channel 0"),
        };
        decoder.received(&buf[..n]);
        loop {
            match decoder.decode() {
                Ok(frame) => println!("{}", frame.display(false)),
                Err(defmt_decoder::DecodeError::UnexpectedEof) => break,
                Err(defmt_decoder::DecodeError::Malformed) => {
                    eprintln!("(malformed defmt frame skipped)");
                    break;
                }
            }
        }
        if n == 0 {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stlink(serial: &str) -> ProbeEntry {
        ProbeEntry {
            name: "STLink V3".into(),
            vendor_id: 0x0483,
            product_id: 0x374e,
            serial: Some(serial.into()),
        }
    }

    #[test]
    fn no_probe_says_how_to_connect_one() {
        let e = select_probe(&[], None).unwrap_err().to_string();
        assert!(e.contains("no debug probe found") && e.contains("udev"), "{e}");
    }

    #[test]
    fn one_probe_is_taken_several_need_a_choice() {
        assert_eq!(select_probe(&[stlink("A")], None).unwrap(), 0);
        let two = [stlink("A"), stlink("B")];
        let e = select_probe(&two, None).unwrap_err().to_string();
        assert!(e.contains("several debug probes") && e.contains("0483:374e:B"), "{e}");
        assert_eq!(select_probe(&two, Some("0483:374e:B")).unwrap(), 1);
        let e = select_probe(&two, Some("0483:374e")).unwrap_err().to_string();
        assert!(e.contains("add the serial number"), "{e}");
    }

    #[test]
    fn a_selector_that_matches_nothing_or_cannot_be_read_is_named() {
        let e = select_probe(&[stlink("A")], Some("1366:1015")).unwrap_err().to_string();
        assert!(
            e.contains("no debug probe matches --probe 1366:1015") && e.contains("STLink"),
            "{e}"
        );
        let e = select_probe(&[], Some("zz:1")).unwrap_err().to_string();
        assert!(e.contains("expected VID:PID[:SERIAL]"), "{e}");
    }
}
