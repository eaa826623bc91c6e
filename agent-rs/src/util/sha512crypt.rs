//! SHA-512 based crypt(3) ("$6$"), as specified by Ulrich Drepper's
//! "Unix crypt using SHA-256 and SHA-512", with the default 5000 rounds.

use super::sha512::Sha512;

const CRYPT_B64: &[u8; 64] = b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const ROUNDS_DEFAULT: u32 = 5000;
const SALT_MAX: usize = 16;

/// Hashes `password` with `salt` (at most 16 bytes are used) into a
/// `$6$<salt>$<hash>` string.
pub fn sha512_crypt(password: &[u8], salt: &[u8]) -> String {
    let salt = &salt[..salt.len().min(SALT_MAX)];
    let p = password;
    let rounds = ROUNDS_DEFAULT;

    // Digest B = H(P S P).
    let mut b = Sha512::new();
    b.update(p);
    b.update(salt);
    b.update(p);
    let b = b.finish();

    // Digest A = H(P S B* bits-of-len(P)...).
    let mut a = Sha512::new();
    a.update(p);
    a.update(salt);
    let mut n = p.len();
    while n > 64 {
        a.update(&b);
        n -= 64;
    }
    a.update(&b[..n]);
    let mut n = p.len();
    while n > 0 {
        if n & 1 != 0 {
            a.update(&b);
        } else {
            a.update(p);
        }
        n >>= 1;
    }
    let a = a.finish();

    // P sequence: H(P repeated len(P) times), stretched to len(P).
    let mut dp = Sha512::new();
    for _ in 0..p.len() {
        dp.update(p);
    }
    let dp = dp.finish();
    let p_seq: Vec<u8> = dp.iter().cycle().take(p.len()).copied().collect();

    // S sequence: H(S repeated 16 + A[0] times), truncated to len(S).
    let mut ds = Sha512::new();
    for _ in 0..16 + usize::from(a[0]) {
        ds.update(salt);
    }
    let ds = ds.finish();
    let s_seq = &ds[..salt.len()];

    let mut c = a;
    for i in 0..rounds {
        let mut h = Sha512::new();
        if i & 1 != 0 {
            h.update(&p_seq);
        } else {
            h.update(&c);
        }
        if i % 3 != 0 {
            h.update(s_seq);
        }
        if i % 7 != 0 {
            h.update(&p_seq);
        }
        if i & 1 != 0 {
            h.update(&c);
        } else {
            h.update(&p_seq);
        }
        c = h.finish();
    }

    let mut out = String::with_capacity(3 + salt.len() + 1 + 86);
    out.push_str("$6$");
    out.push_str(&String::from_utf8_lossy(salt));
    out.push('$');
    const ORDER: [(usize, usize, usize); 21] = [
        (0, 21, 42),
        (22, 43, 1),
        (44, 2, 23),
        (3, 24, 45),
        (25, 46, 4),
        (47, 5, 26),
        (6, 27, 48),
        (28, 49, 7),
        (50, 8, 29),
        (9, 30, 51),
        (31, 52, 10),
        (53, 11, 32),
        (12, 33, 54),
        (34, 55, 13),
        (56, 14, 35),
        (15, 36, 57),
        (37, 58, 16),
        (59, 17, 38),
        (18, 39, 60),
        (40, 61, 19),
        (62, 20, 41),
    ];
    for (x, y, z) in ORDER {
        push_b64(&mut out, c[x], c[y], c[z], 4);
    }
    push_b64(&mut out, 0, 0, c[63], 2);
    out
}

fn push_b64(out: &mut String, b2: u8, b1: u8, b0: u8, n: usize) {
    let mut w = (u32::from(b2) << 16) | (u32::from(b1) << 8) | u32::from(b0);
    for _ in 0..n {
        out.push(char::from(CRYPT_B64[(w & 0x3f) as usize]));
        w >>= 6;
    }
}

/// Makes a 16-character salt from crypt's alphabet using `random` bytes.
pub fn salt_from_random(random: &[u8; SALT_MAX]) -> String {
    random
        .iter()
        .map(|&r| char::from(CRYPT_B64[usize::from(r & 0x3f)]))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drepper_test_vectors() {
        // From the specification's test suite (default rounds).
        assert_eq!(
            sha512_crypt(b"Hello world!", b"saltstring"),
            "$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJu\
             esI68u4OTLiBFdcbYEdFCoEOfaS35inz1"
        );
        // Salt longer than 16 characters is truncated.
        let long = sha512_crypt(b"Hello world!", b"saltstringsaltstring");
        assert!(long.starts_with("$6$saltstringsaltst$"));
    }

    #[test]
    fn matches_glibc_crypt() {
        // Values computed with glibc crypt(3). The long password exercises
        // the B-repeat loop, the empty one the degenerate sequences.
        let pw = b"we have a short salt string but not a short password, really long one";
        assert_eq!(
            sha512_crypt(pw, b"short"),
            "$6$short$Z0.EpaH.wR/Vgqnz169pOYRZdefVzZKCBaboedPYNyUshQM7PMJqOaSkhPeu4j8PHO\
             smgurVb6sPndN3z.lFf/"
        );
        assert_eq!(
            sha512_crypt(b"", b"abc"),
            "$6$abc$mJP3a6FyA8uCnzRtlnNypPwjnvpi5TP9qOrInzrfDmwxUQG38PkpCPdqfTb8JQfAngapM\
             xeim4AZ..hSdRRzD."
        );
        assert_eq!(
            sha512_crypt("pässwörd".as_bytes(), b"0123456789abcdef"),
            "$6$0123456789abcdef$SbYrq9vmP3mhdocMu6pAC/f.xWxY2daFD3BB.LQwWeU2vm9Kk529r2RR\
             D35SLt1PrlKfEVlyiymFPnfNDWfx6."
        );
    }

    #[test]
    fn salt_alphabet() {
        let s = salt_from_random(&[0, 1, 63, 64, 255, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
        assert_eq!(s.len(), 16);
        assert!(s.starts_with("./z.z"));
        assert!(s.bytes().all(|c| CRYPT_B64.contains(&c)));
    }
}
