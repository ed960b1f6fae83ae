// Native buffers for tensors. JavaScript's garbage collector does not see native memory, so every buffer
// is handed out as an external ArrayBuffer that can be freed deterministically (free() detaches it) and
// is otherwise freed when the ArrayBuffer is collected. Reuse of buffers between steps is the job of the
// JavaScript-side pool (src/tensor/pool.ts): creating external ArrayBuffers is what costs, not malloc.
//
// The memory is deliberately not reported to V8 (AdjustExternalMemory): it is freed by scopes, not by the
// garbage collector, and reporting gigabytes of it made V8 run a full collection on almost every allocation.
#include <sys/mman.h>
#include <cstdlib>
#include <unordered_map>
#include <vector>
#include "common.h"

namespace lmf {

namespace {
struct Block {
  void* data;
  size_t bytes;
  bool freed;
};
std::unordered_map<void*, Block*> live;  // data pointer -> block; touched on the main thread only
int64_t liveBytes = 0;
int64_t peakBytes = 0;

void release(Block* b) {
  live.erase(b->data);
  liveBytes -= static_cast<int64_t>(b->bytes);
  std::free(b->data);
  b->freed = true;
}

void finalize(Napi::Env env, void* /*data*/, Block* b) {
  if (!b->freed) release(b);
  delete b;
}
}  // namespace

// Large buffers start on a 2 MiB boundary and their whole 2 MiB pages may be backed by huge pages (MADV_HUGEPAGE):
// a stream over a weight then meets a TLB miss every 2 MiB instead of every 4 KiB (a C probe of a 49152x576 head:
// 21 -> 26 GB/s; decode's per-step product time 14.0-14.4 -> 13.0-14.6 ms with the layers' matrices included). A
// buffer is padded to whole pages where that adds at most a quarter (a 1.7 MiB projection becomes one huge page);
// otherwise the tail past its last whole page keeps small pages.
constexpr size_t kHugePage = size_t{2} << 20;

// alloc(bytes, zero) -> ArrayBuffer, 64-byte aligned
static Napi::Value Alloc(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  size_t bytes = static_cast<size_t>(i64(info[0]));
  bool zero = info.Length() > 1 && boolean(info[1]);
  size_t rounded = ((bytes + 63) / 64) * 64;
  if (rounded == 0) rounded = 64;
  void* data = nullptr;
  if (rounded >= kHugePage * 3 / 4) {
    const size_t whole = (rounded + kHugePage - 1) / kHugePage * kHugePage;
    if (whole - rounded <= whole / 4) rounded = whole;
    if (posix_memalign(&data, kHugePage, rounded) != 0) data = nullptr;
#ifdef MADV_HUGEPAGE
    if (data) madvise(data, rounded / kHugePage * kHugePage, MADV_HUGEPAGE);
#endif
  } else {
    data = std::aligned_alloc(64, rounded);
  }
  if (!data) {
    Napi::Error::New(env, "out of memory: could not allocate " + std::to_string(bytes) + " bytes")
        .ThrowAsJavaScriptException();
    return env.Null();
  }
  if (zero) std::memset(data, 0, rounded);
  Block* b = new Block{data, rounded, false};
  live[data] = b;
  liveBytes += static_cast<int64_t>(rounded);
  if (liveBytes > peakBytes) peakBytes = liveBytes;
  return Napi::ArrayBuffer::New(env, data, bytes, finalize, b);
}

// free(arrayBuffer): releases the memory now and detaches the buffer so no view can reach it again.
static Napi::Value Free(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::ArrayBuffer ab = info[0].As<Napi::ArrayBuffer>();
  void* data = ab.Data();
  auto it = live.find(data);
  if (it == live.end()) return env.Undefined();  // already freed or not ours
  Block* b = it->second;
  release(b);
  ab.Detach();
  return env.Undefined();
}

static Napi::Value MemoryStats(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("liveBytes", static_cast<double>(liveBytes));
  o.Set("peakBytes", static_cast<double>(peakBytes));
  o.Set("liveBuffers", static_cast<double>(live.size()));
  if (info.Length() > 0 && boolean(info[0])) peakBytes = liveBytes;  // reset the peak
  return o;
}

void registerMemory(Napi::Env env, Napi::Object exports) {
  exports.Set("alloc", Napi::Function::New(env, Alloc));
  exports.Set("free", Napi::Function::New(env, Free));
  exports.Set("memoryStats", Napi::Function::New(env, MemoryStats));
}

}  // namespace lmf
