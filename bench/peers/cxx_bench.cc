// cxx_bench.cc - the C++ peer: std::shared_ptr / std::weak_ptr, and the
// weak cache a C++ server writes by hand: a std::shared_mutex guarding a
// std::unordered_map<std::string, std::weak_ptr<T>> (transparent lookup, so
// no std::string is built per get).  Entries are removed promptly when
// their object dies (a custom deleter erases the entry if it still names a
// dead object), as libwref's maps do.  Same keys, sequences and durations
// as the other peers (common.h).
#include "common.h"

#include <atomic>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

struct Obj {
	uint64_t key = 0;
	uint64_t pad = 0;
};

static bench_opts opt;

// ---- 1. upgrade + release ------------------------------------------------
struct UpCtx {
	std::weak_ptr<Obj> w[2];
	int shared;
};

static void up_body(bench_thr *t)
{
	auto *c = static_cast<UpCtx *>(t->arg);
	std::weak_ptr<Obj> &w = c->w[c->shared ? 0 : t->tid];
	uint64_t n = 0;
	while (!BENCH_STOP(t)) {
		for (int i = 0; i < 64; i++) {
			std::shared_ptr<Obj> p = w.lock();
			p.reset();
		}
		BENCH_OPS(t, n += 64);
	}
}

static void w_upgrade()
{
	std::vector<std::shared_ptr<Obj>> keep;
	UpCtx c;
	for (int i = 0; i < 2; i++) {
		for (int j = 0; j < 4; j++) // the threads' objects on other lines
			keep.push_back(std::make_shared<Obj>());
		keep.push_back(std::make_shared<Obj>());
		c.w[i] = keep.back();
	}
	c.shared = 0;
	bench_out("up_1t", bench_run(1, opt.ms, up_body, &c));
	bench_out("up_2t_own", bench_run(2, opt.ms, up_body, &c));
	c.shared = 1;
	bench_out("up_2t_shared", bench_run(2, opt.ms, up_body, &c));
	for (int i = 0; i < opt.nthreads; i++) {
		char k[32];
		snprintf(k, sizeof k, "scale_up_%d", opt.threads[i]);
		bench_out(k, bench_run(opt.threads[i], opt.ms, up_body, &c));
	}
}

// ---- 2. create + release -------------------------------------------------
static void new_body(bench_thr *t)
{
	uint64_t n = 0;
	bool weak = t->arg != nullptr;
	while (!BENCH_STOP(t)) {
		for (int i = 0; i < 64; i++) {
			auto p = std::make_shared<Obj>();
			if (weak) {
				std::weak_ptr<Obj> w = p;
				p.reset();
				w.reset();
			}
		}
		BENCH_OPS(t, n += 64);
	}
}

static void w_create()
{
	bench_out("new_rel", bench_run(1, opt.ms, new_body, nullptr));
	bench_out("new_rel_weak", bench_run(1, opt.ms, new_body, &opt));
}

// ---- the hand-written weak cache -----------------------------------------
struct SvHash {
	using is_transparent = void;
	size_t operator()(std::string_view s) const noexcept
	{
		return std::hash<std::string_view>{}(s);
	}
};

struct Cache {
	std::shared_mutex mu;
	std::unordered_map<std::string, std::weak_ptr<Obj>, SvHash,
			   std::equal_to<>> map;

	std::shared_ptr<Obj> get(std::string_view k)
	{
		std::shared_lock<std::shared_mutex> l(mu);
		auto it = map.find(k);
		if (it == map.end())
			return nullptr;
		return it->second.lock();
	}

	void set(std::string_view k, const std::shared_ptr<Obj> &o)
	{
		std::unique_lock<std::shared_mutex> l(mu);
		map.insert_or_assign(std::string(k), o);
	}

	// a fresh object whose deleter erases its entry if the entry still
	// names a dead object
	std::shared_ptr<Obj> make(std::string_view k)
	{
		return std::shared_ptr<Obj>(new Obj,
					    [this, key = std::string(k)](Obj *o) {
			{
				std::unique_lock<std::shared_mutex> g(mu);
				auto e = map.find(std::string_view(key));
				if (e != map.end() && e->second.expired())
					map.erase(e);
			}
			delete o;
		});
	}

	void del(std::string_view k)
	{
		std::unique_lock<std::shared_mutex> l(mu);
		auto it = map.find(k);
		if (it != map.end())
			map.erase(it);
	}

	// set of a fresh object made by make(): replaces without building a
	// std::string when the key is present
	void replace(std::string_view k, const std::shared_ptr<Obj> &o)
	{
		std::unique_lock<std::shared_mutex> l(mu);
		auto it = map.find(k);
		if (it != map.end())
			it->second = o;
		else
			map.emplace(std::string(k), o);
	}

	// get-or-create; the object's deleter erases its entry
	std::shared_ptr<Obj> get_or_create(std::string_view k)
	{
		if (auto p = get(k))
			return p;
		std::unique_lock<std::shared_mutex> l(mu);
		auto it = map.find(k);
		if (it != map.end())
			if (auto p = it->second.lock())
				return p;
		std::string key(k);
		std::shared_ptr<Obj> p = make(k);
		if (it != map.end())
			it->second = p;
		else
			map.emplace(std::move(key), p);
		return p;
	}
};

static char (*keys)[16];

struct GetCtx {
	Cache *c;
	uint32_t base;
};

static void get_body(bench_thr *t)
{
	auto *g = static_cast<GetCtx *>(t->arg);
	uint64_t s = 0x9e3779b97f4a7c15ull * (uint64_t)(t->tid + 1), n = 0;
	while (!BENCH_STOP(t)) {
		for (int i = 0; i < 64; i++) {
			uint32_t k = g->base +
				(uint32_t)(bench_xs(&s) & (BENCH_NKEYS - 1));
			auto p = g->c->get(std::string_view(keys[k],
							    BENCH_KEYLEN));
			p.reset();
		}
		BENCH_OPS(t, n += 64);
	}
}

static void w_get()
{
	Cache c;
	std::vector<std::shared_ptr<Obj>> o;
	for (uint32_t i = 0; i < BENCH_NKEYS; i++) {
		o.push_back(std::make_shared<Obj>());
		c.set(std::string_view(keys[i], BENCH_KEYLEN), o.back());
	}
	GetCtx hit = { &c, 0 }, miss = { &c, BENCH_NKEYS };
	bench_out("get_hit_1t", bench_run(1, opt.ms, get_body, &hit));
	bench_out("get_hit_2t", bench_run(2, opt.ms, get_body, &hit));
	bench_out("get_miss_1t", bench_run(1, opt.ms, get_body, &miss));
	bench_out("get_miss_2t", bench_run(2, opt.ms, get_body, &miss));
	for (int i = 0; i < opt.nthreads; i++) {
		char k[32];
		snprintf(k, sizeof k, "scale_get_%d", opt.threads[i]);
		bench_out(k, bench_run(opt.threads[i], opt.ms, get_body, &hit));
	}
}

// ---- 4. get-or-create under churn ----------------------------------------
static char (*ckeys)[16];
static uint32_t *zseq[2];

static void goc_body(bench_thr *t)
{
	auto *c = static_cast<Cache *>(t->arg);
	std::vector<std::shared_ptr<Obj>> ring(BENCH_RING);
	const uint32_t *seq = zseq[t->tid];
	uint64_t n = 0;
	size_t pos = 0;
	while (!BENCH_STOP(t)) {
		for (int i = 0; i < 64; i++, pos++) {
			uint32_t k = seq[pos & (BENCH_SEQ - 1)];
			ring[pos & (BENCH_RING - 1)] = c->get_or_create(
				std::string_view(ckeys[k], BENCH_KEYLEN));
		}
		BENCH_OPS(t, n += 64);
	}
}

static void w_churn()
{
	ckeys = (char(*)[16])malloc(BENCH_CHURN_KEYS * 16);
	for (uint32_t i = 0; i < BENCH_CHURN_KEYS; i++)
		bench_key(ckeys[i], i);
	zseq[0] = bench_zipf_seq(BENCH_CHURN_KEYS, BENCH_SEQ, 0);
	zseq[1] = bench_zipf_seq(BENCH_CHURN_KEYS, BENCH_SEQ, 1);
	Cache c;
	bench_out("goc_churn_2t", bench_run(2, opt.ms, goc_body, &c));
}

// ---- 8. threads outnumbering cores: mixed ops on 4096 shared keys -------
// the same workload as wref_bench's os_body
static void os_body(bench_thr *t)
{
	auto *run = static_cast<bench_os_run *>(t->arg);
	auto *c = static_cast<Cache *>(run->arg);
	bench_hist *h = run->h[t->tid];
	std::vector<std::shared_ptr<Obj>> ring(run->keep);
	uint64_t s = 0x9e3779b97f4a7c15ull * (uint64_t)(t->tid + 1), n = 0;
	int pos = 0;
	for (int k = t->tid; k < BENCH_OS_KEYS; k += run->n) {
		std::string_view key(keys[k], BENCH_KEYLEN);
		auto p = c->make(key);
		c->replace(key, p);
		ring[pos] = std::move(p);
		pos = pos + 1 == run->keep ? 0 : pos + 1;
	}
	BENCH_OS_READY(run);
	while (!BENCH_STOP(t)) {
		for (int i = 0; i < 64; i++) {
			uint64_t r = bench_xs(&s);
			std::string_view key(keys[bench_os_key(r)],
					     BENCH_KEYLEN);
			int op = bench_os_op(r), rec = BENCH_OS_REC(run);
			std::shared_ptr<Obj> p;
			uint64_t a = bench_tick();
			switch (op) {
			case BENCH_OS_OP_GET:
				p = c->get(key);
				h->hits += p != nullptr;
				h->gets++;
				p.reset();
				break;
			case BENCH_OS_OP_SET:
				p = c->make(key);
				c->replace(key, p);
				break;
			case BENCH_OS_OP_DEL:
				c->del(key);
				break;
			default:
				p = c->get_or_create(key);
			}
			if (p) {
				ring[pos].swap(p);
				pos = pos + 1 == run->keep ? 0 : pos + 1;
				p.reset(); // the evicted ref
			}
			uint64_t b = bench_tick();
			if (rec)
				bench_h_add(h, op, b - a);
		}
		BENCH_OPS(t, n += 64);
	}
}

static void w_oversub()
{
	bench_out("os_clock", bench_tick_cost());
	for (int i = 0; i < opt.os_n; i++) {
		Cache c;
		bench_os_res r;
		bench_run_os(opt.os_threads[i], opt.os_ms, os_body, &c, &r);
		bench_out_os(opt.os_threads[i], &r);
	}
}

// ---- 5. death callbacks: a custom deleter, run inline ---------------------
static std::atomic<uint64_t> cb_count;

static void w_callbacks()
{
	uint64_t n = 0, t0 = bench_now_ns(),
		 end = t0 + (uint64_t)(opt.ms * 1e6);
	do {
		for (int i = 0; i < 64; i++) {
			std::shared_ptr<Obj> p(new Obj, [](Obj *o) {
				cb_count.fetch_add(1, std::memory_order_relaxed);
				delete o;
			});
			std::weak_ptr<Obj> w = p;
			p.reset();
		}
		n += 64;
	} while (bench_now_ns() < end);
	bench_out("cb_tput", (double)(bench_now_ns() - t0) / (double)n);
}

// ---- 6. memory -----------------------------------------------------------
static void w_memory()
{
	std::vector<std::shared_ptr<Obj>> o;
	std::vector<std::weak_ptr<Obj>> w;
	o.reserve(BENCH_MEM_N);
	w.reserve(BENCH_MEM_N);
	size_t a0 = bench_allocated();
	for (int i = 0; i < BENCH_MEM_N; i++)
		o.push_back(std::make_shared<Obj>());
	size_t a1 = bench_allocated();
	for (int i = 0; i < BENCH_MEM_N; i++)
		w.push_back(o[i]);
	size_t a2 = bench_allocated();
	auto *c = new Cache;
	for (int i = 0; i < BENCH_MEM_N; i++)
		c->set(std::string_view(keys[i], BENCH_KEYLEN), o[i]);
	size_t a3 = bench_allocated();
	// make_shared: object and control block in one allocation; a
	// shared_ptr handle is 16 bytes, not counted (libwref's is 8)
	bench_out("mem_obj", (double)(a1 - a0) / BENCH_MEM_N);
	bench_out("mem_ref", (double)(a2 - a1) / BENCH_MEM_N +
				     sizeof(std::weak_ptr<Obj>));
	bench_out("mem_entry", (double)(a3 - a2) / BENCH_MEM_N);
	delete c;
}

int main(int argc, char **argv)
{
	bench_parse(&opt, argc, argv);
	keys = (char(*)[16])malloc(2 * BENCH_NKEYS * 16);
	for (uint32_t i = 0; i < 2 * BENCH_NKEYS; i++)
		bench_key(keys[i], i);
	if (bench_want(&opt, "memory"))
		w_memory();
	if (bench_want(&opt, "upgrade"))
		w_upgrade();
	if (bench_want(&opt, "create"))
		w_create();
	if (bench_want(&opt, "get"))
		w_get();
	if (bench_want(&opt, "churn"))
		w_churn();
	if (bench_want(&opt, "callbacks"))
		w_callbacks();
	if (bench_want(&opt, "oversub"))
		w_oversub();
	return 0;
}
