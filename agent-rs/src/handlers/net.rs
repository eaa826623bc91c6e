//! guest-network-get-interfaces: addresses from getifaddrs(3), hardware
//! addresses from /sys/class/net, counters from /proc/net/dev.

use crate::error::{AgentError, HandlerResult};
use crate::util::text::read_text;
use serde_json::{json, Map, Value};
use std::ffi::CStr;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr};

#[derive(Debug, Default, PartialEq)]
pub struct Iface {
    pub name: String,
    pub addrs: Vec<(String, &'static str, u32)>,
}

/// Counters from one /proc/net/dev line: name and the eight QGA fields.
pub fn parse_net_dev(text: &str) -> Vec<(String, [u64; 8])> {
    let mut out = Vec::new();
    for line in text.lines().skip(2) {
        let Some((name, rest)) = line.split_once(':') else {
            continue;
        };
        let n: Vec<u64> = rest
            .split_whitespace()
            .map_while(|v| v.parse().ok())
            .collect();
        if n.len() < 12 {
            continue;
        }
        // rx: bytes packets errs drop fifo frame compressed multicast,
        // tx: bytes packets errs drop ...
        out.push((
            name.trim().to_string(),
            [n[0], n[1], n[2], n[3], n[8], n[9], n[10], n[11]],
        ));
    }
    out
}

fn prefix_len(mask: &[u8]) -> u32 {
    mask.iter().map(|b| b.count_ones()).sum()
}

/// Walks getifaddrs: interfaces in first-seen order with their IPv4/IPv6
/// addresses and prefix lengths.
fn list_ifaddrs() -> io::Result<Vec<Iface>> {
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs allocates a list that we free below.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let mut out: Vec<Iface> = Vec::new();
    let mut cur = head;
    while !cur.is_null() {
        // SAFETY: cur points into the list returned by getifaddrs.
        let ifa = unsafe { &*cur };
        cur = ifa.ifa_next;
        if ifa.ifa_name.is_null() {
            continue;
        }
        // SAFETY: ifa_name is a NUL-terminated string.
        let name = unsafe { CStr::from_ptr(ifa.ifa_name) }
            .to_string_lossy()
            .into_owned();
        let idx = match out.iter().position(|i| i.name == name) {
            Some(i) => i,
            None => {
                out.push(Iface {
                    name,
                    addrs: Vec::new(),
                });
                out.len() - 1
            }
        };
        if ifa.ifa_addr.is_null() {
            continue;
        }
        // SAFETY: sa_family tells which sockaddr type the pointer holds;
        // netmask (when present) has the same family.
        unsafe {
            match i32::from((*ifa.ifa_addr).sa_family) {
                libc::AF_INET => {
                    let a = &*(ifa.ifa_addr as *const libc::sockaddr_in);
                    let ip = Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr));
                    let prefix = if ifa.ifa_netmask.is_null() {
                        0
                    } else {
                        let m = &*(ifa.ifa_netmask as *const libc::sockaddr_in);
                        m.sin_addr.s_addr.count_ones()
                    };
                    out[idx].addrs.push((ip.to_string(), "ipv4", prefix));
                }
                libc::AF_INET6 => {
                    let a = &*(ifa.ifa_addr as *const libc::sockaddr_in6);
                    let ip = Ipv6Addr::from(a.sin6_addr.s6_addr);
                    let prefix = if ifa.ifa_netmask.is_null() {
                        0
                    } else {
                        let m = &*(ifa.ifa_netmask as *const libc::sockaddr_in6);
                        prefix_len(&m.sin6_addr.s6_addr)
                    };
                    out[idx].addrs.push((ip.to_string(), "ipv6", prefix));
                }
                _ => {}
            }
        }
    }
    // SAFETY: head came from getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(head) };
    Ok(out)
}

pub fn iface_value(i: &Iface, hwaddr: Option<String>, stats: Option<&[u64; 8]>) -> Value {
    let mut o = Map::new();
    o.insert("name".into(), i.name.clone().into());
    if let Some(hw) = hwaddr {
        o.insert("hardware-address".into(), hw.into());
    }
    let addrs: Vec<Value> = i
        .addrs
        .iter()
        .map(|(ip, kind, prefix)| json!({"ip-address": ip, "ip-address-type": kind, "prefix": prefix}))
        .collect();
    o.insert("ip-addresses".into(), Value::Array(addrs));
    if let Some(s) = stats {
        o.insert(
            "statistics".into(),
            json!({
                "rx-bytes": s[0], "rx-packets": s[1], "rx-errs": s[2], "rx-dropped": s[3],
                "tx-bytes": s[4], "tx-packets": s[5], "tx-errs": s[6], "tx-dropped": s[7],
            }),
        );
    }
    Value::Object(o)
}

fn hwaddr(name: &str) -> Option<String> {
    let a = read_text(format!("/sys/class/net/{name}/address")).ok()?;
    let a = a.trim();
    (!a.is_empty()).then(|| a.to_string())
}

pub fn get_interfaces() -> HandlerResult {
    let ifaces = list_ifaddrs().map_err(|e| AgentError::io("getifaddrs failed", &e))?;
    let stats = read_text("/proc/net/dev")
        .map(|t| parse_net_dev(&t))
        .unwrap_or_default();
    let list = ifaces
        .iter()
        .map(|i| {
            let st = stats.iter().find(|(n, _)| *n == i.name).map(|(_, s)| s);
            iface_value(i, hwaddr(&i.name), st)
        })
        .collect();
    Ok(Value::Array(list))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NET_DEV: &str = "\
Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:    1000      10    0    0    0     0          0         0     1000      10    0    0    0     0       0          0
  eth0: 123456     789    1    2    0     0          0         3    65432     321    4    5    0     0       0          0
";

    #[test]
    fn net_dev_counters() {
        let s = parse_net_dev(NET_DEV);
        assert_eq!(s.len(), 2);
        assert_eq!(s[1].0, "eth0");
        assert_eq!(s[1].1, [123456, 789, 1, 2, 65432, 321, 4, 5]);
    }

    #[test]
    fn prefix_from_mask() {
        assert_eq!(prefix_len(&[255, 255, 255, 0]), 24);
        let mut m6 = [0u8; 16];
        m6[..8].fill(0xff);
        assert_eq!(prefix_len(&m6), 64);
    }

    #[test]
    fn value_shape() {
        let i = Iface {
            name: "eth0".into(),
            addrs: vec![
                ("10.0.2.15".into(), "ipv4", 24),
                ("fe80::1".into(), "ipv6", 64),
            ],
        };
        let v = iface_value(
            &i,
            Some("52:54:00:12:34:56".into()),
            Some(&[1, 2, 3, 4, 5, 6, 7, 8]),
        );
        assert_eq!(v["hardware-address"], "52:54:00:12:34:56");
        assert_eq!(
            v["ip-addresses"][0],
            json!({"ip-address": "10.0.2.15", "ip-address-type": "ipv4", "prefix": 24})
        );
        assert_eq!(v["statistics"]["tx-dropped"], 8);
        assert_eq!(v["statistics"]["rx-bytes"], 1);
    }

    #[test]
    fn live_has_loopback() {
        let v = get_interfaces().unwrap();
        let lo = v.as_array().unwrap().iter().find(|i| i["name"] == "lo");
        assert!(lo.is_some());
    }
}
