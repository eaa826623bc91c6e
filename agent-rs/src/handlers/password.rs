//! guest-set-user-password: rewrites the user's entry in /etc/shadow (or
//! the password field of /etc/passwd when there is no shadow file)
//! atomically, hashing clear-text passwords with SHA-512 crypt ("$6$").
//! No chpasswd, PAM or NSS needed, so it works in minimal guests.

use crate::args::SetUserPasswordArgs;
use crate::error::{AgentError, HandlerResult};
use crate::util::{base64, sha512crypt};
use serde_json::json;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

fn random_salt() -> String {
    let mut r = [0u8; 16];
    if File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut r))
        .is_err()
    {
        let t = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        for (i, b) in r.iter_mut().enumerate() {
            *b = (t >> (i * 5)) as u8 ^ (std::process::id() >> (i % 4)) as u8;
        }
    }
    sha512crypt::salt_from_random(&r)
}

fn days_since_epoch() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
        / 86400
}

/// Replaces field 2 (the password) of `user`'s line; in shadow files also
/// sets field 3 (last change, in days). None if the user has no line.
pub fn replace_entry(text: &str, user: &str, hash: &str, lastchg: Option<u64>) -> Option<String> {
    let mut found = false;
    let mut out = String::with_capacity(text.len() + hash.len());
    let day = lastchg.map(|d| d.to_string());
    for line in text.split_inclusive('\n') {
        let body = line.strip_suffix('\n').unwrap_or(line);
        let mut fields: Vec<&str> = body.split(':').collect();
        if found || fields.len() < 2 || fields[0] != user {
            out.push_str(line);
            continue;
        }
        found = true;
        fields[1] = hash;
        if let (Some(d), true) = (&day, fields.len() >= 3) {
            fields[2] = d;
        }
        out.push_str(&fields.join(":"));
        if line.ends_with('\n') {
            out.push('\n');
        }
    }
    found.then_some(out)
}

fn user_in_passwd(text: &str, user: &str) -> bool {
    text.lines().any(|l| l.split(':').next() == Some(user))
}

/// Writes `path` via a temporary file in the same directory and rename(2),
/// keeping the original's mode and ownership.
pub fn write_atomic(path: &Path, data: &str) -> io::Result<()> {
    let md = fs::metadata(path)?;
    let dir = path.parent().unwrap_or(Path::new("/"));
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let tmp = dir.join(format!(".{name}.neuroflow-agent.{}", std::process::id()));
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(data.as_bytes())?;
        std::os::unix::fs::fchown(&f, Some(md.uid()), Some(md.gid()))?;
        f.set_permissions(fs::Permissions::from_mode(md.mode() & 0o7777))?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

pub fn set_password_in(etc: &Path, user: &str, hash: &str) -> Result<(), AgentError> {
    let passwd_path = etc.join("passwd");
    let shadow_path = etc.join("shadow");
    let io_err = |what: &str, p: &Path, e: io::Error| {
        AgentError::io(format!("{what} '{}'", p.display()), &e)
    };
    if shadow_path.exists() {
        let text =
            fs::read_to_string(&shadow_path).map_err(|e| io_err("cannot read", &shadow_path, e))?;
        let new = match replace_entry(&text, user, hash, Some(days_since_epoch())) {
            Some(t) => t,
            None => {
                let passwd = fs::read_to_string(&passwd_path).unwrap_or_default();
                if !user_in_passwd(&passwd, user) {
                    return Err(AgentError::generic(format!("user '{user}' does not exist")));
                }
                let mut t = text;
                if !t.is_empty() && !t.ends_with('\n') {
                    t.push('\n');
                }
                t.push_str(&format!(
                    "{user}:{hash}:{}:0:99999:7:::\n",
                    days_since_epoch()
                ));
                t
            }
        };
        write_atomic(&shadow_path, &new).map_err(|e| io_err("cannot write", &shadow_path, e))
    } else {
        let text =
            fs::read_to_string(&passwd_path).map_err(|e| io_err("cannot read", &passwd_path, e))?;
        let new = replace_entry(&text, user, hash, None)
            .ok_or_else(|| AgentError::generic(format!("user '{user}' does not exist")))?;
        write_atomic(&passwd_path, &new).map_err(|e| io_err("cannot write", &passwd_path, e))
    }
}

/// Validates the arguments and returns the crypt string to store.
pub fn password_hash(a: &SetUserPasswordArgs) -> Result<String, AgentError> {
    if a.username.is_empty() || a.username.contains([':', '\n', '\0']) {
        return Err(AgentError::invalid_param("username"));
    }
    let raw = base64::decode(&a.password)
        .ok_or_else(|| AgentError::generic("Parameter 'password' is not valid base64"))?;
    if a.crypted {
        let s = String::from_utf8(raw).map_err(|_| AgentError::invalid_param("password"))?;
        if s.contains([':', '\n', '\0']) {
            return Err(AgentError::generic(
                "forbidden characters in crypted password",
            ));
        }
        Ok(s)
    } else {
        if raw.contains(&b'\n') || raw.contains(&0) {
            return Err(AgentError::generic("forbidden characters in raw password"));
        }
        Ok(sha512crypt::sha512_crypt(&raw, random_salt().as_bytes()))
    }
}

pub fn set_user_password(a: SetUserPasswordArgs) -> HandlerResult {
    let hash = password_hash(&a)?;
    set_password_in(Path::new("/etc"), &a.username, &hash)?;
    Ok(json!({}))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmpdir(tag: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("nfa-pw-{}-{tag}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn replace_in_shadow_and_passwd() {
        let shadow = "root:*:19000:0:99999:7:::\nbob:!:19000:0:99999:7:::\n";
        let out = replace_entry(shadow, "bob", "$6$s$h", Some(20000)).unwrap();
        assert_eq!(
            out,
            "root:*:19000:0:99999:7:::\nbob:$6$s$h:20000:0:99999:7:::\n"
        );
        assert!(replace_entry(shadow, "bo", "x", None).is_none());
        let passwd = "root::0:0:root:/root:/bin/sh";
        assert_eq!(
            replace_entry(passwd, "root", "$6$a$b", None).unwrap(),
            "root:$6$a$b:0:0:root:/root:/bin/sh"
        );
    }

    #[test]
    fn hashing_and_validation() {
        let a = SetUserPasswordArgs {
            username: "root".into(),
            password: base64::encode(b"s3cret"),
            crypted: false,
        };
        let h = password_hash(&a).unwrap();
        assert!(h.starts_with("$6$"));
        let salt = &h[3..19];
        assert_eq!(h, sha512crypt::sha512_crypt(b"s3cret", salt.as_bytes()));
        let c = SetUserPasswordArgs {
            username: "root".into(),
            password: base64::encode(b"$6$x$y"),
            crypted: true,
        };
        assert_eq!(password_hash(&c).unwrap(), "$6$x$y");
        let bad = SetUserPasswordArgs {
            username: "a:b".into(),
            password: "".into(),
            crypted: true,
        };
        assert_eq!(
            password_hash(&bad).unwrap_err().desc,
            "Invalid parameter 'username'"
        );
        let bad = SetUserPasswordArgs {
            username: "root".into(),
            password: base64::encode(b"a\nb"),
            crypted: false,
        };
        assert!(password_hash(&bad).is_err());
        let bad = SetUserPasswordArgs {
            username: "root".into(),
            password: "***".into(),
            crypted: false,
        };
        assert!(password_hash(&bad).is_err());
    }

    #[test]
    fn files_updated_atomically() {
        let d = tmpdir("shadow");
        fs::write(
            d.join("passwd"),
            "root:x:0:0::/root:/bin/sh\nalice:x:1000:1000::/home/a:/bin/sh\n",
        )
        .unwrap();
        fs::write(d.join("shadow"), "root:*:1:0:99999:7:::\n").unwrap();
        fs::set_permissions(d.join("shadow"), fs::Permissions::from_mode(0o640)).unwrap();
        set_password_in(&d, "root", "$6$a$b").unwrap();
        let s = fs::read_to_string(d.join("shadow")).unwrap();
        assert!(s.starts_with("root:$6$a$b:"));
        assert_eq!(
            fs::metadata(d.join("shadow")).unwrap().mode() & 0o777,
            0o640
        );
        // In passwd but not in shadow: an entry is added.
        set_password_in(&d, "alice", "$6$c$d").unwrap();
        let s = fs::read_to_string(d.join("shadow")).unwrap();
        assert!(s.contains("\nalice:$6$c$d:"));
        assert!(set_password_in(&d, "nobody", "x").is_err());
        // No stray temporary files.
        assert_eq!(fs::read_dir(&d).unwrap().count(), 2);
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn passwd_only_system() {
        let d = tmpdir("passwd");
        fs::write(d.join("passwd"), "root::0:0:root:/root:/bin/sh\n").unwrap();
        set_password_in(&d, "root", "$6$e$f").unwrap();
        assert_eq!(
            fs::read_to_string(d.join("passwd")).unwrap(),
            "root:$6$e$f:0:0:root:/root:/bin/sh\n"
        );
        assert_eq!(
            set_password_in(&d, "bob", "x").unwrap_err().desc,
            "user 'bob' does not exist"
        );
        fs::remove_dir_all(&d).unwrap();
    }
}
