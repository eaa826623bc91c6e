//! nf-iobench: 4 KiB random writes with O_DIRECT, one at a time (queue depth 1), on a block device or
//! file, for a number of seconds; prints `{"iops":N,"writes":N,"seconds":S,"spanMiB":M}`. It is what
//! fio's `--rw=randwrite --bs=4k --direct=1 --iodepth=1` measures, small enough to ship in the test
//! guest (fio would drag in librbd, libgfapi, RDMA and Python). Test and benchmark tool only.
//!
//! Usage: nf-iobench DEVICE SECONDS [SPAN_MIB]   (SPAN_MIB: the region written, default 256)

use std::ffi::CString;
use std::process::exit;
use std::time::{Duration, Instant};

const BLOCK: usize = 4096;

fn fail(msg: &str) -> ! {
    eprintln!("nf-iobench: {msg}");
    exit(2)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        fail("usage: nf-iobench DEVICE SECONDS [SPAN_MIB]");
    }
    let seconds: u64 = args[2]
        .parse()
        .unwrap_or_else(|_| fail("SECONDS must be a whole number"));
    let span_mib: u64 = match args.get(3) {
        Some(s) => s
            .parse()
            .unwrap_or_else(|_| fail("SPAN_MIB must be a whole number")),
        None => 256,
    };
    let blocks = span_mib * 1024 * 1024 / BLOCK as u64;
    if blocks == 0 {
        fail("SPAN_MIB must be at least 1");
    }
    let path = CString::new(args[1].as_bytes()).unwrap_or_else(|_| fail("bad path"));
    // SAFETY: path is a valid NUL-terminated string; the fd is checked below.
    let fd = unsafe { libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_DIRECT) };
    if fd < 0 {
        fail(&format!(
            "cannot open {}: {}",
            args[1],
            std::io::Error::last_os_error()
        ));
    }
    let mut buf: *mut libc::c_void = std::ptr::null_mut();
    // SAFETY: O_DIRECT needs an aligned buffer; posix_memalign fills `buf` on success.
    if unsafe { libc::posix_memalign(&mut buf, BLOCK, BLOCK) } != 0 {
        fail("cannot allocate an aligned buffer");
    }
    // SAFETY: buf points to BLOCK writable bytes.
    unsafe { libc::memset(buf, 0x5a, BLOCK) };
    // xorshift64*, seeded from the clock: offsets spread over the span
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1);
    let mut x = seed ^ 0x9E37_79B9_7F4A_7C15;
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let start = Instant::now();
    let mut writes: u64 = 0;
    while Instant::now() < deadline {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        let block = x.wrapping_mul(0x2545_F491_4F6C_DD1D) % blocks;
        // SAFETY: fd is open for writing, buf holds BLOCK aligned bytes.
        let n = unsafe { libc::pwrite(fd, buf, BLOCK, (block * BLOCK as u64) as libc::off_t) };
        if n != BLOCK as isize {
            fail(&format!(
                "write failed: {}",
                std::io::Error::last_os_error()
            ));
        }
        writes += 1;
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{{\"iops\":{},\"writes\":{},\"seconds\":{:.2},\"spanMiB\":{}}}",
        (writes as f64 / secs).round() as u64,
        writes,
        secs,
        span_mib
    );
}
