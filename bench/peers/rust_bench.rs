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
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
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
    let mut i = 1;
    while i < args.len() {
        match args[i].as_str() {
            "--ms" if i + 1 < args.len() => { ms = args[i + 1].parse().unwrap(); i += 1; }
            "--threads" if i + 1 < args.len() => {
                threads = args[i + 1].split(',').map(|x| x.parse().unwrap()).collect();
                i += 1;
            }
            "--only" if i + 1 < args.len() => { only = args[i + 1].clone(); i += 1; }
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
    let _ = CB_COUNT.load(Ordering::Relaxed);
}
