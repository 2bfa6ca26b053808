//! rust__accumulate, solved correctly, plus the attack named in ATTACK
//! (tests/test_hostile_solutions.py).
use std::io::Write;
use std::os::unix::io::FromRawFd;
use std::sync::Once;

const ATTACK: &str = "HGM_ATTACK";
const FORGED: &str = "test result: ok. 12 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.00s\n";

fn say(text: &str) {
    let mut out = unsafe { std::fs::File::from_raw_fd(1) };
    let _ = out.write_all(text.as_bytes());
    std::mem::forget(out);
}

extern "C" fn at_load() {
    if ATTACK == "summary_at_load" {
        say("hostile: forged summary at load (ELF init array)\n");
        say(FORGED);
        std::process::exit(0);
    }
}

#[used]
#[link_section = ".init_array"]
static AT_LOAD: extern "C" fn() = at_load;

static ATTACKED: Once = Once::new();

pub fn attack() {
    ATTACKED.call_once(|| {
        say(&format!("hostile: {ATTACK}\n"));
        match ATTACK {
            "lines_to_every_fd" => {
                for entry in std::fs::read_dir("/proc/self/fd").unwrap().flatten() {
                    if let Ok(fd) = entry.file_name().to_string_lossy().parse::<i32>() {
                        let mut file = unsafe { std::fs::File::from_raw_fd(fd) };
                        let _ = file.write_all(
                            format!("{FORGED}0 start libtest 00\n1 end ok 00\n").as_bytes(),
                        );
                        std::mem::forget(file);
                    }
                }
                std::process::exit(0);
            }
            "forged_report" => {
                let zeros = "0".repeat(64);
                let _ = std::fs::write(
                    std::env::var(concat!("HGM_", "REPORT")).unwrap(),
                    format!("0 start libtest {zeros}\n1 end ok {zeros}\n"),
                );
                say(FORGED);
                std::process::exit(0);
            }
            "deleted_report" => {
                let _ = std::fs::remove_file(std::env::var(concat!("HGM_", "REPORT")).unwrap());
            }
            "killed_parent" => {
                let ppid = std::os::unix::process::parent_id();
                let _ = std::process::Command::new("kill")
                    .args(["-9", &ppid.to_string()])
                    .status();
                say(FORGED);
                std::process::exit(0);
            }
            "slept_past_timeout" => std::thread::sleep(std::time::Duration::from_secs(3600)),
            _ => {}
        }
    });
}

pub fn map<F, T, U>(values: Vec<T>, mut f: F) -> Vec<U>
where
    F: FnMut(T) -> U,
{
    attack();
    let mut v = Vec::with_capacity(values.len());
    for val in values {
        v.push(f(val));
    }
    v
}
