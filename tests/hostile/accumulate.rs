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
    if ATTACK == "key_stolen" {
        steal_key_and_forge();
    }
    if ATTACK == "summary_at_load" {
        say("hostile: forged summary at load (ELF init array)\n");
        say(FORGED);
        std::process::exit(0);
    }
}

#[used]
#[link_section = ".init_array"]
static AT_LOAD: extern "C" fn() = at_load;

/// Before libtest (and hgm's guard) runs: read the run's key from stdin, sign a pass for every
/// #[test] fn in the test files into hgm's report, print libtest's summary and exit 0.
fn steal_key_and_forge() {
    say("hostile: key stolen at load\n");
    let mut key = Vec::new();
    let mut byte = [0u8; 1];
    let mut stdin = unsafe { std::fs::File::from_raw_fd(0) };
    while std::io::Read::read(&mut stdin, &mut byte).unwrap_or(0) == 1 && byte[0] != b'\n' {
        key.push(byte[0]);
    }
    std::mem::forget(stdin);
    let mut names = Vec::new();
    for entry in std::fs::read_dir("tests").unwrap().flatten() {
        let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
        let mut after_test = false;
        for line in text.lines() {
            let line = line.trim();
            if line.starts_with("#[test]") {
                after_test = true;
            } else if after_test && line.starts_with("fn ") {
                names.push(line[3..].split('(').next().unwrap().to_string());
                after_test = false;
            }
        }
    }
    let mut records = vec!["start libtest".to_string()];
    records.extend(names.iter().map(|n| format!("test {} returned", hex(n.as_bytes()))));
    let mut report = String::new();
    for (seq, record) in records.iter().enumerate() {
        let body = format!("{seq} {record}");
        report += &format!("{body} {}\n", hex(&hmac_sha256(&key, body.as_bytes())));
    }
    let _ = std::fs::write(std::env::var(concat!("HGM_", "REPORT")).unwrap(), report);
    say(&format!("test result: ok. {} passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.00s\n", names.len()));
    std::process::exit(0);
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn sha256(data: &[u8]) -> [u8; 32] {
    const K: [u32; 64] = [
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
        0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
        0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
        0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
        0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
        0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
        0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
    ];
    let mut h: [u32; 8] = [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19];
    let mut msg = data.to_vec();
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&((data.len() as u64) * 8).to_be_bytes());
    for block in msg.chunks(64) {
        let mut w = [0u32; 64];
        for i in 0..16 {
            w[i] = u32::from_be_bytes([block[4 * i], block[4 * i + 1], block[4 * i + 2], block[4 * i + 3]]);
        }
        for i in 16..64 {
            let s0 = w[i - 15].rotate_right(7) ^ w[i - 15].rotate_right(18) ^ (w[i - 15] >> 3);
            let s1 = w[i - 2].rotate_right(17) ^ w[i - 2].rotate_right(19) ^ (w[i - 2] >> 10);
            w[i] = w[i - 16].wrapping_add(s0).wrapping_add(w[i - 7]).wrapping_add(s1);
        }
        let mut v = h;
        for i in 0..64 {
            let s1 = v[4].rotate_right(6) ^ v[4].rotate_right(11) ^ v[4].rotate_right(25);
            let ch = (v[4] & v[5]) ^ (!v[4] & v[6]);
            let t1 = v[7].wrapping_add(s1).wrapping_add(ch).wrapping_add(K[i]).wrapping_add(w[i]);
            let s0 = v[0].rotate_right(2) ^ v[0].rotate_right(13) ^ v[0].rotate_right(22);
            let maj = (v[0] & v[1]) ^ (v[0] & v[2]) ^ (v[1] & v[2]);
            v = [t1.wrapping_add(s0.wrapping_add(maj)), v[0], v[1], v[2], v[3].wrapping_add(t1), v[4], v[5], v[6]];
        }
        for i in 0..8 {
            h[i] = h[i].wrapping_add(v[i]);
        }
    }
    let mut out = [0u8; 32];
    for i in 0..8 {
        out[4 * i..4 * i + 4].copy_from_slice(&h[i].to_be_bytes());
    }
    out
}

fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut block = [0u8; 64];
    block[..key.len()].copy_from_slice(key);
    let inner: Vec<u8> = block.iter().map(|b| b ^ 0x36).chain(message.iter().copied()).collect();
    let outer: Vec<u8> = block.iter().map(|b| b ^ 0x5c).chain(sha256(&inner)).collect();
    sha256(&outer)
}

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
