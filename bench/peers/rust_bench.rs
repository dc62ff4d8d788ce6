// rust_bench.rs - the Rust peer (std only): Arc/Weak upgrade, and the weak
// cache a Rust program writes: RwLock<HashMap<String, Weak<T>>> (std's
// default SipHash), entries removed promptly by the object's Drop when it
// dies.  Death callbacks: Drop, run inline.  Same keys, sequences,
// durations and output lines as bench/peers/common.h.
//
// Linked against jemalloc (the process's malloc, as in the C peers) to read
// stats.allocated for the memory workload.
use std::collections::HashMap;
use std::os::raw::{c_char, c_int, c_void};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock, Weak};
use std::time::{Duration, Instant};

#[link(name = "jemalloc")]
extern "C" {
    fn mallctl(name: *const c_char, oldp: *mut c_void, oldlenp: *mut usize,
               newp: *mut c_void, newlen: usize) -> c_int;
}

const NKEYS: u32 = 16384;
const CHURN_KEYS: u32 = 65536;
const ZIPF_S: f64 = 0.99;
const RING: usize = 256;
const SEQ: usize = 65536;
const MEM_N: usize = 20000;
const OS_KEYS: u32 = 4096;
const OS_RING: usize = 4096;
const OS_GET: u64 = 90;
const OS_SET: u64 = 4;
const OS_DEL: u64 = 3;

struct Obj {
    _key: u64,
    _pad: u64,
}
fn new_obj() -> Obj {
    Obj { _key: 0, _pad: 0 }
}

fn xs(s: &mut u64) -> u64 {
    let mut x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *s = x;
    x
}

fn key(i: u32) -> String {
    format!("k:{:010}", i)
}

fn zipf_seq(n: u32, len: usize, tid: u64) -> Vec<u32> {
    let mut cdf = Vec::with_capacity(n as usize);
    let mut sum = 0.0f64;
    for i in 0..n {
        sum += 1.0 / ((i + 1) as f64).powf(ZIPF_S);
        cdf.push(sum);
    }
    let mut s: u64 = 0x1234567u64.wrapping_add(7919u64 * (tid + 1));
    let mut out = Vec::with_capacity(len);
    for _ in 0..len {
        let u = (xs(&mut s) >> 11) as f64 / 9007199254740992.0 * sum;
        let (mut lo, mut hi) = (0u32, n - 1);
        while lo < hi {
            let mid = (lo + hi) / 2;
            if cdf[mid as usize] < u { lo = mid + 1 } else { hi = mid }
        }
        out.push(((lo as u64 * 2654435761u64) % n as u64) as u32);
    }
    out
}

#[repr(align(128))]
struct Thr {
    ops: AtomicU64,
}

// runs body(tid, stop, ops) on n threads; ns per op per thread
fn run<F>(n: usize, ms: f64, body: F) -> f64
where
    F: Fn(usize, &AtomicBool, &AtomicU64) + Sync,
{
    let stop = AtomicBool::new(false);
    let thr: Vec<Thr> = (0..n).map(|_| Thr { ops: AtomicU64::new(0) }).collect();
    let sum = |t: &Vec<Thr>| -> u64 { t.iter().map(|x| x.ops.load(Ordering::Relaxed)).sum() };
    let mut res = f64::NAN;
    std::thread::scope(|sc| {
        for i in 0..n {
            let (stop, thr, body) = (&stop, &thr, &body);
            sc.spawn(move || body(i, stop, &thr[i].ops));
        }
        std::thread::sleep(Duration::from_secs_f64(ms / 4000.0));
        let (o0, t0) = (sum(&thr), Instant::now());
        std::thread::sleep(Duration::from_secs_f64(ms / 1000.0));
        let (o1, el) = (sum(&thr), t0.elapsed());
        stop.store(true, Ordering::Relaxed);
        if o1 > o0 {
            res = el.as_nanos() as f64 * n as f64 / (o1 - o0) as f64;
        }
    });
    res
}

fn out(k: &str, v: f64) {
    println!("{} {:.4}", k, v);
}

fn allocated() -> usize {
    unsafe {
        let mut epoch: u64 = 1;
        let mut sz = std::mem::size_of::<u64>();
        mallctl(b"thread.tcache.flush\0".as_ptr() as *const c_char,
                std::ptr::null_mut(), std::ptr::null_mut(), std::ptr::null_mut(), 0);
        mallctl(b"epoch\0".as_ptr() as *const c_char, &mut epoch as *mut u64 as *mut c_void,
                &mut sz, &mut epoch as *mut u64 as *mut c_void, sz);
        let mut v: usize = 0;
        let mut vz = std::mem::size_of::<usize>();
        if mallctl(b"stats.allocated\0".as_ptr() as *const c_char,
                   &mut v as *mut usize as *mut c_void, &mut vz, std::ptr::null_mut(), 0) != 0 {
            return 0;
        }
        v
    }
}

// ---- 1. upgrade + release ---------------------------------------------------
fn w_upgrade(ms: f64, threads: &[usize]) {
    let mut keep = Vec::new();
    let mut w = Vec::new();
    for _ in 0..2 {
        for _ in 0..4 {
            keep.push(Arc::new(new_obj())); // the threads' objects on other lines
        }
        let a = Arc::new(new_obj());
        w.push(Arc::downgrade(&a));
        keep.push(a);
    }
    let body = |shared: bool| {
        let w = &w;
        move |tid: usize, stop: &AtomicBool, ops: &AtomicU64| {
            let r = &w[if shared { 0 } else { tid }];
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                for _ in 0..64 {
                    let p = r.upgrade();
                    drop(p);
                }
                n += 64;
                ops.store(n, Ordering::Relaxed);
            }
        }
    };
    out("up_1t", run(1, ms, body(false)));
    out("up_2t_own", run(2, ms, body(false)));
    out("up_2t_shared", run(2, ms, body(true)));
    for &t in threads {
        out(&format!("scale_up_{}", t), run(t, ms, body(true)));
    }
}

// ---- 2. create + release ----------------------------------------------------
fn w_create(ms: f64) {
    let body = |weak: bool| {
        move |_tid: usize, stop: &AtomicBool, ops: &AtomicU64| {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                for _ in 0..64 {
                    let a = Arc::new(new_obj());
                    if weak {
                        let w = Arc::downgrade(&a);
                        drop(a);
                        drop(w);
                    } else {
                        drop(a);
                    }
                }
                n += 64;
                ops.store(n, Ordering::Relaxed);
            }
        }
    };
    out("new_rel", run(1, ms, body(false)));
    out("new_rel_weak", run(1, ms, body(true)));
}

// ---- 3 + 7. map get -------------------------------------------------------------
fn w_get(ms: f64, keys: &[String], threads: &[usize]) {
    let map: RwLock<HashMap<String, Weak<Obj>>> = RwLock::new(HashMap::new());
    let objs: Vec<Arc<Obj>> = (0..NKEYS).map(|_| Arc::new(new_obj())).collect();
    for i in 0..NKEYS as usize {
        map.write().unwrap().insert(keys[i].clone(), Arc::downgrade(&objs[i]));
    }
    let body = |base: u32| {
        let map = &map;
        move |tid: usize, stop: &AtomicBool, ops: &AtomicU64| {
            let mut s: u64 = 0x9e3779b97f4a7c15u64.wrapping_mul(tid as u64 + 1);
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                for _ in 0..64 {
                    let k = base + (xs(&mut s) & (NKEYS as u64 - 1)) as u32;
                    let p = {
                        let g = map.read().unwrap();
                        g.get(keys[k as usize].as_str()).and_then(|w| w.upgrade())
                    };
                    drop(p);
                }
                n += 64;
                ops.store(n, Ordering::Relaxed);
            }
        }
    };
    out("get_hit_1t", run(1, ms, body(0)));
    out("get_hit_2t", run(2, ms, body(0)));
    out("get_miss_1t", run(1, ms, body(NKEYS)));
    out("get_miss_2t", run(2, ms, body(NKEYS)));
    for &t in threads {
        out(&format!("scale_get_{}", t), run(t, ms, body(0)));
    }
}

// ---- 4. get-or-create under churn ---------------------------------------------
struct Cache {
    map: RwLock<HashMap<String, Weak<CObj>>>,
    keys: Vec<String>,
}
struct CObj {
    key: u32,
    cache: &'static Cache,
}
impl Drop for CObj {
    fn drop(&mut self) {
        // remove the entry if it still names a dead object
        let k = self.cache.keys[self.key as usize].as_str();
        let mut g = self.cache.map.write().unwrap();
        if let Some(w) = g.get(k) {
            if w.strong_count() == 0 {
                g.remove(k);
            }
        }
    }
}
impl Cache {
    fn get(&'static self, k: u32) -> Option<Arc<CObj>> {
        let key = self.keys[k as usize].as_str();
        let g = self.map.read().unwrap();
        g.get(key).and_then(|w| w.upgrade())
    }
    // a fresh object (its Drop removes its entry)
    fn make(&'static self, k: u32) -> Arc<CObj> {
        Arc::new(CObj { key: k, cache: self })
    }
    // set: replaces in place when the key is present (no String built)
    fn set(&'static self, k: u32, p: &Arc<CObj>) {
        let key = self.keys[k as usize].as_str();
        let w = Arc::downgrade(p);
        let mut g = self.map.write().unwrap();
        if let Some(e) = g.get_mut(key) {
            *e = w;
        } else {
            g.insert(key.to_string(), w);
        }
    }
    fn del(&'static self, k: u32) {
        let key = self.keys[k as usize].as_str();
        self.map.write().unwrap().remove(key);
    }
    fn get_or_create(&'static self, k: u32) -> Arc<CObj> {
        let key = self.keys[k as usize].as_str();
        if let Some(p) = self.map.read().unwrap().get(key).and_then(|w| w.upgrade()) {
            return p;
        }
        let mut g = self.map.write().unwrap();
        if let Some(p) = g.get(key).and_then(|w| w.upgrade()) {
            return p;
        }
        let p = Arc::new(CObj { key: k, cache: self });
        g.insert(key.to_string(), Arc::downgrade(&p));
        p
    }
}

fn w_churn(ms: f64) {
    let cache: &'static Cache = Box::leak(Box::new(Cache {
        map: RwLock::new(HashMap::new()),
        keys: (0..CHURN_KEYS).map(key).collect(),
    }));
    let seq = [zipf_seq(CHURN_KEYS, SEQ, 0), zipf_seq(CHURN_KEYS, SEQ, 1)];
    let seq = &seq;
    out("goc_churn_2t", run(2, ms, move |tid: usize, stop: &AtomicBool, ops: &AtomicU64| {
        let mut ring: Vec<Option<Arc<CObj>>> = (0..RING).map(|_| None).collect();
        let s = &seq[tid];
        let (mut n, mut pos) = (0u64, 0usize);
        while !stop.load(Ordering::Relaxed) {
            for _ in 0..64 {
                let k = s[pos & (SEQ - 1)];
                let p = cache.get_or_create(k);
                ring[pos & (RING - 1)] = Some(p);
                pos += 1;
            }
            n += 64;
            ops.store(n, Ordering::Relaxed);
        }
    }));
}

// ---- 8. threads outnumbering cores: mixed ops on 4096 shared keys ------------
// common.h's clock and log-linear histogram (HdrHistogram layout, 2
// significant digits), re-implemented
#[cfg(target_arch = "x86_64")]
fn tick() -> u64 {
    unsafe { core::arch::x86_64::_rdtsc() }
}
#[cfg(not(target_arch = "x86_64"))]
fn tick() -> u64 {
    use std::sync::OnceLock;
    static T0: OnceLock<Instant> = OnceLock::new();
    T0.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

const H_SUB: u64 = 128;
const H_N: usize = (2 * H_SUB + 56 * H_SUB) as usize;

fn h_idx(v: u64) -> usize {
    if v < 2 * H_SUB {
        return v as usize;
    }
    let e = 63 - v.leading_zeros() as u64;
    (2 * H_SUB + (e - 8) * H_SUB + ((v >> (e - 7)) - H_SUB)) as usize
}

fn h_top(i: usize) -> u64 {
    let i = i as u64;
    if i < 2 * H_SUB {
        return i;
    }
    let e = (i - 2 * H_SUB) / H_SUB + 8;
    let s = (i - 2 * H_SUB) % H_SUB + H_SUB;
    ((s + 1) << (e - 7)) - 1
}

// the value at quantile q of the counts n - minus (common.h's)
fn h_quantile(n: &[u64], minus: Option<&[u64]>, q: f64) -> u64 {
    let c = |i: usize| n[i] - minus.map_or(0, |m| m[i]);
    let total: u64 = (0..n.len()).map(c).sum();
    if total == 0 {
        return 0;
    }
    let want = ((q * total as f64).ceil() as u64).max(1);
    let mut cum = 0;
    for i in 0..n.len() {
        cum += c(i);
        if cum >= want {
            return h_top(i);
        }
    }
    0
}

fn tick_cost() -> f64 {
    let pairs = 200000u64;
    let (t0, k0) = (Instant::now(), tick());
    let mut sink = 0u64;
    for _ in 0..pairs {
        let a = tick();
        sink += tick() - a;
    }
    let (k1, el) = (tick(), t0.elapsed());
    sink as f64 / pairs as f64 * el.as_nanos() as f64 / (k1 - k0) as f64
}

struct OsHist {
    n: Vec<u64>, // every op
    u: Vec<u64>, // the updates alone: set, del, get-or-create
    gets: u64,
    hits: u64,
}

// the same workload as wref_bench's os_body, on a Cache of 4096 keys
fn os_body(cache: &'static Cache, tid: usize, nthr: usize, stop: &AtomicBool,
           rec: &AtomicBool, ready: &AtomicUsize) -> OsHist {
    let mut h = OsHist { n: vec![0; H_N], u: vec![0; H_N], gets: 0, hits: 0 };
    let mut ring: Vec<Option<Arc<CObj>>> = (0..OS_RING).map(|_| None).collect();
    let mut s: u64 = 0x9e3779b97f4a7c15u64.wrapping_mul(tid as u64 + 1);
    let mut pos = 0usize;
    let mut k = tid;
    while k < OS_KEYS as usize {
        let p = cache.make(k as u32);
        cache.set(k as u32, &p);
        ring[pos] = Some(p);
        pos = if pos + 1 == OS_RING { 0 } else { pos + 1 };
        k += nthr;
    }
    ready.fetch_add(1, Ordering::Relaxed); // a count: the runner waits for it
    while !stop.load(Ordering::Relaxed) { // pairs with the runner's store
        for _ in 0..64 {
            let r = xs(&mut s);
            let k = ((r >> 32) as u32) & (OS_KEYS - 1);
            let p100 = r % 100;
            let on = rec.load(Ordering::Relaxed); // window marker only
            let a = tick();
            let update = p100 >= OS_GET;
            let p: Option<Arc<CObj>> = if p100 < OS_GET {
                let g = cache.get(k);
                h.hits += g.is_some() as u64;
                h.gets += 1;
                drop(g);
                None
            } else if p100 < OS_GET + OS_SET {
                let p = cache.make(k);
                cache.set(k, &p);
                Some(p)
            } else if p100 < OS_GET + OS_SET + OS_DEL {
                cache.del(k);
                None
            } else {
                Some(cache.get_or_create(k))
            };
            if p.is_some() {
                let old = std::mem::replace(&mut ring[pos], p);
                pos = if pos + 1 == OS_RING { 0 } else { pos + 1 };
                drop(old);
            }
            let b = tick();
            if on {
                // a negative span (a clock step between CPUs) counts as 0
                let i = h_idx(b.saturating_sub(a));
                h.n[i] += 1;
                if update {
                    h.u[i] += 1;
                }
            }
        }
    }
    drop(ring);
    h
}

fn w_oversub(ms: f64, threads: &[usize]) {
    out("os_clock", tick_cost());
    for &n in threads {
        let cache: &'static Cache = Box::leak(Box::new(Cache {
            map: RwLock::new(HashMap::new()),
            keys: (0..OS_KEYS).map(key).collect(),
        }));
        let stop = AtomicBool::new(false);
        let rec = AtomicBool::new(false);
        let ready = AtomicUsize::new(0);
        let mut all = OsHist { n: vec![0; H_N], u: vec![0; H_N], gets: 0, hits: 0 };
        let (mut k0, mut k1, mut el) = (0u64, 0u64, Duration::ZERO);
        std::thread::scope(|sc| {
            let hs: Vec<_> = (0..n)
                .map(|i| {
                    let (stop, rec, ready) = (&stop, &rec, &ready);
                    sc.spawn(move || os_body(cache, i, n, stop, rec, ready))
                })
                .collect();
            while ready.load(Ordering::Relaxed) < n {
                std::thread::sleep(Duration::from_micros(100));
            }
            std::thread::sleep(Duration::from_secs_f64(ms / 4000.0));
            let t0 = Instant::now();
            k0 = tick();
            rec.store(true, Ordering::Relaxed); // window marker only
            std::thread::sleep(Duration::from_secs_f64(ms / 1000.0));
            rec.store(false, Ordering::Relaxed); // window marker only
            k1 = tick();
            el = t0.elapsed();
            stop.store(true, Ordering::Relaxed); // the join publishes the histograms
            for j in hs {
                let h = j.join().unwrap();
                for (a, b) in all.n.iter_mut().zip(h.n.iter()) {
                    *a += *b;
                }
                for (a, b) in all.u.iter_mut().zip(h.u.iter()) {
                    *a += *b;
                }
                all.gets += h.gets;
                all.hits += h.hits;
            }
        });
        let ops: u64 = all.n.iter().sum();
        let ns_tick = if k1 > k0 { el.as_nanos() as f64 / (k1 - k0) as f64 } else { 1.0 };
        out(&format!("os_mops_{}", n), ops as f64 * 1e3 / el.as_nanos() as f64);
        let k = if ops > 0 { ns_tick } else { f64::NAN };
        let (n_, u_) = (&all.n[..], &all.u[..]);
        for (name, h, minus, q) in [("p50", n_, None, 0.5), ("p99", n_, None, 0.99),
                                    ("p999", n_, None, 0.999),
                                    ("get_p99", n_, Some(u_), 0.99),
                                    ("get_p999", n_, Some(u_), 0.999),
                                    ("upd_p99", u_, None, 0.99),
                                    ("upd_p999", u_, None, 0.999)] {
            out(&format!("os_{}_{}", name, n), h_quantile(h, minus, q) as f64 * k);
        }
        out(&format!("os_hit_{}", n),
            if all.gets > 0 { 100.0 * all.hits as f64 / all.gets as f64 } else { f64::NAN });
    }
}

// ---- 5. death callbacks (Drop, inline) -----------------------------------------
static CB_COUNT: AtomicU64 = AtomicU64::new(0);
struct CbObj {
    _key: u64,
    _pad: u64,
}
impl Drop for CbObj {
    fn drop(&mut self) {
        CB_COUNT.fetch_add(1, Ordering::Relaxed);
    }
}

fn w_callbacks(ms: f64) {
    let t0 = Instant::now();
    let mut n = 0u64;
    while t0.elapsed().as_secs_f64() * 1000.0 < ms {
        for _ in 0..64 {
            let a = Arc::new(CbObj { _key: 0, _pad: 0 });
            let w = Arc::downgrade(&a);
            drop(a);
            drop(w);
        }
        n += 64;
    }
    out("cb_tput", t0.elapsed().as_nanos() as f64 / n as f64);
}

// ---- 6. memory -------------------------------------------------------------------
fn w_memory(keys: &[String]) {
    let mut o: Vec<Arc<Obj>> = Vec::with_capacity(MEM_N);
    let mut w: Vec<Weak<Obj>> = Vec::with_capacity(MEM_N);
    let a0 = allocated();
    for _ in 0..MEM_N {
        o.push(Arc::new(new_obj()));
    }
    let a1 = allocated();
    for i in 0..MEM_N {
        w.push(Arc::downgrade(&o[i]));
    }
    let a2 = allocated();
    let map: RwLock<HashMap<String, Weak<Obj>>> = RwLock::new(HashMap::new());
    for i in 0..MEM_N {
        map.write().unwrap().insert(keys[i].clone(), Arc::downgrade(&o[i]));
    }
    let a3 = allocated();
    let n = MEM_N as f64;
    out("mem_obj", (a1 - a0) as f64 / n);
    out("mem_ref", (a2 - a1) as f64 / n + std::mem::size_of::<Weak<Obj>>() as f64);
    out("mem_entry", (a3 - a2) as f64 / n);
    drop(map);
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mut ms = 30.0;
    let mut threads: Vec<usize> = vec![1, 2];
    let mut only = String::new();
    let mut os_threads: Vec<usize> = vec![8, 32, 128];
    let mut os_ms = 0.0;
    let mut i = 1;
    while i < args.len() {
        match args[i].as_str() {
            "--ms" if i + 1 < args.len() => { ms = args[i + 1].parse().unwrap(); i += 1; }
            "--threads" if i + 1 < args.len() => {
                threads = args[i + 1].split(',').map(|x| x.parse().unwrap()).collect();
                i += 1;
            }
            "--only" if i + 1 < args.len() => { only = args[i + 1].clone(); i += 1; }
            "--os-ms" if i + 1 < args.len() => { os_ms = args[i + 1].parse().unwrap(); i += 1; }
            "--os-threads" if i + 1 < args.len() => {
                os_threads = args[i + 1].split(',').map(|x| x.parse().unwrap()).collect();
                i += 1;
            }
            "--lat" | "--impl" => { i += 1; }
            _ => {}
        }
        i += 1;
    }
    let keys: Vec<String> = (0..2 * NKEYS).map(key).collect();
    let want = |g: &str| only.is_empty() || only == g;
    if want("memory") { w_memory(&keys); }
    if want("upgrade") { w_upgrade(ms, &threads); }
    if want("create") { w_create(ms); }
    if want("get") { w_get(ms, &keys, &threads); }
    if want("churn") { w_churn(ms); }
    if want("callbacks") { w_callbacks(ms); }
    if want("oversub") { w_oversub(if os_ms > 0.0 { os_ms } else { ms }, &os_threads); }
    let _ = CB_COUNT.load(Ordering::Relaxed);
}
