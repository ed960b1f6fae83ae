// lmf_mpi: the collectives data-parallel training needs, over Open MPI. A separate addon from lmf_native so
// that a single-process run never loads libmpi.
//
// One communication thread owns MPI (it calls MPI_Init_thread, every collective and MPI_Finalize: the
// FUNNELED model). JavaScript submits jobs and gets a ticket; the jobs run in submission order, so every rank
// issues the same collectives in the same order, and `wait(ticket)` blocks until that job is done. Gradient
// buckets are submitted while backward still runs on the main thread and reduced meanwhile.
//
// Sums never depend on timing: a bucket is reduced as an all-to-all of its W chunks (rank r receives every
// rank's copy of chunk r) followed by a sum in rank order 0, 1, …, W-1 on the chunk's owner, then (allreduce)
// an all-gather of the summed chunks. That is the bandwidth of a ring allreduce, and the order of the
// additions is fixed by the ranks alone, not by MPI's choice of algorithm.
#include <dlfcn.h>
#include <mpi.h>
#include <napi.h>

#include <algorithm>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace {

struct Span {
  float* data;
  size_t size;
};

class Communicator {
 public:
  int rank = 0, size = 1, localRank = 0, localSize = 1;
  std::string processor;

  // Starts the thread and initialises MPI on it; returns an error message, empty on success.
  std::string start() {
    std::unique_lock<std::mutex> lock(mu_);
    worker_ = std::thread([this] { run(); });
    idle_.wait(lock, [this] { return initDone_; });
    return error_;
  }

  uint64_t submit(std::function<void()> job) {
    std::lock_guard<std::mutex> lock(mu_);
    jobs_.push_back(std::move(job));
    wake_.notify_one();
    return ++submitted_;
  }

  // Blocks until job `ticket` ran; returns the first MPI error met so far (empty when none).
  std::string wait(uint64_t ticket) {
    std::unique_lock<std::mutex> lock(mu_);
    idle_.wait(lock, [&] { return completed_ >= ticket || !error_.empty(); });
    return error_;
  }

  void stop() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
      wake_.notify_one();
    }
    if (worker_.joinable()) worker_.join();
  }

  // Called on the worker thread by a job whose MPI call failed.
  void fail(const std::string& what, int code) {
    char text[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(code, text, &len);
    std::lock_guard<std::mutex> lock(mu_);
    if (error_.empty()) error_ = what + ": " + std::string(text, len);
  }

 private:
  std::thread worker_;
  std::mutex mu_;
  std::condition_variable wake_, idle_;
  std::deque<std::function<void()>> jobs_;
  uint64_t submitted_ = 0, completed_ = 0;
  bool stopping_ = false, initDone_ = false;
  std::string error_;

  void run() {
    initialise();
    for (;;) {
      std::function<void()> job;
      {
        std::unique_lock<std::mutex> lock(mu_);
        wake_.wait(lock, [this] { return stopping_ || !jobs_.empty(); });
        if (jobs_.empty()) break;  // stopping, and every job submitted before ran
        job = std::move(jobs_.front());
        jobs_.pop_front();
      }
      if (error_.empty()) job();  // after an error the jobs are skipped: the world is broken
      std::lock_guard<std::mutex> lock(mu_);
      completed_++;
      idle_.notify_all();
    }
    if (error_.empty()) MPI_Finalize();
  }

  void initialise() {
    // Open MPI loads its components as plugins that resolve symbols of libmpi: they must be global, and
    // Node opened this addon (and with it libmpi) with RTLD_LOCAL.
    if (!dlopen("libmpi.so.40", RTLD_NOW | RTLD_GLOBAL | RTLD_NOLOAD) &&
        !dlopen("libmpi.so.40", RTLD_NOW | RTLD_GLOBAL))
      dlopen("libmpi.so", RTLD_NOW | RTLD_GLOBAL);
    int provided = 0;
    int rc = MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided);
    std::string failure;
    if (rc != MPI_SUCCESS) {
      failure = "MPI_Init_thread failed";
    } else {
      MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
      MPI_Comm_rank(MPI_COMM_WORLD, &rank);
      MPI_Comm_size(MPI_COMM_WORLD, &size);
      MPI_Comm local;
      MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank, MPI_INFO_NULL, &local);
      MPI_Comm_rank(local, &localRank);
      MPI_Comm_size(local, &localSize);
      MPI_Comm_free(&local);
      char name[MPI_MAX_PROCESSOR_NAME];
      int len = 0;
      MPI_Get_processor_name(name, &len);
      processor.assign(name, len);
    }
    std::lock_guard<std::mutex> lock(mu_);
    error_ = failure;
    initDone_ = true;
    idle_.notify_all();
  }
};

Communicator* comm = nullptr;

// Chunk r of a bucket of n elements: [bound(n, r), bound(n, r + 1)).
size_t bound(size_t n, int r, int w) { return n * static_cast<size_t>(r) / static_cast<size_t>(w); }

std::vector<Span> spans(const Napi::Array& arrays) {
  std::vector<Span> out;
  for (uint32_t i = 0; i < arrays.Length(); i++) {
    Napi::Float32Array a = arrays.Get(i).As<Napi::Float32Array>();
    out.push_back({a.Data(), a.ElementLength()});
  }
  return out;
}

size_t total(const std::vector<Span>& parts) {
  size_t n = 0;
  for (const Span& s : parts) n += s.size;
  return n;
}

// Copies flat[from, to) to or from the spans, which lie end to end in the flat index space.
void copyRange(std::vector<Span>& parts, float* flat, size_t from, size_t to, bool intoSpans) {
  size_t offset = 0;
  for (Span& s : parts) {
    size_t lo = std::max(from, offset), hi = std::min(to, offset + s.size);
    if (lo < hi) {
      if (intoSpans)
        std::memcpy(s.data + (lo - offset), flat + lo, (hi - lo) * sizeof(float));
      else
        std::memcpy(flat + lo, s.data + (lo - offset), (hi - lo) * sizeof(float));
    }
    offset += s.size;
  }
}

// Scratch of the communication thread (only it runs collectives): grown when a bucket needs more, never
// shrunk, so that a step's buckets neither allocate nor page-fault.
float* scratch(std::vector<float>& buffer, size_t n) {
  if (buffer.size() < n) buffer.resize(n);
  return buffer.data();
}
std::vector<float> flatScratch, receivedScratch;

struct Layout {
  std::vector<int> counts, displs;
};

Layout chunks(size_t n, int w) {
  Layout l{std::vector<int>(w), std::vector<int>(w)};
  for (int r = 0; r < w; r++) {
    l.displs[r] = static_cast<int>(bound(n, r, w));
    l.counts[r] = static_cast<int>(bound(n, r + 1, w) - bound(n, r, w));
  }
  return l;
}

// The bucket's sum over ranks. allreduce: every rank gets the whole sum; otherwise (reduce-scatter) only the
// caller's chunk of the spans is overwritten with its sum.
void reduceBucket(std::vector<Span> parts, bool allreduce) {
  const int w = comm->size, me = comm->rank;
  const size_t n = total(parts);
  float* flat = scratch(flatScratch, n);
  copyRange(parts, flat, 0, n, false);
  Layout l = chunks(n, w);
  const int mine = l.counts[me];
  float* received = scratch(receivedScratch, static_cast<size_t>(mine) * w);
  std::vector<int> rcounts(w, mine), rdispls(w);
  for (int s = 0; s < w; s++) rdispls[s] = s * mine;
  int rc = MPI_Alltoallv(flat, l.counts.data(), l.displs.data(), MPI_FLOAT, received, rcounts.data(), rdispls.data(),
                         MPI_FLOAT, MPI_COMM_WORLD);
  if (rc != MPI_SUCCESS) return comm->fail("gradient all-to-all", rc);
  float* sum = flat + l.displs[me];
  for (int i = 0; i < mine; i++) {
    float acc = received[i];
    for (int s = 1; s < w; s++) acc += received[static_cast<size_t>(s) * mine + i];
    sum[i] = acc;
  }
  if (allreduce) {
    rc = MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, flat, l.counts.data(), l.displs.data(), MPI_FLOAT,
                        MPI_COMM_WORLD);
    if (rc != MPI_SUCCESS) return comm->fail("gradient all-gather", rc);
    copyRange(parts, flat, 0, n, true);
  } else {
    copyRange(parts, flat, l.displs[me], l.displs[me] + mine, true);
  }
}

// Every rank's chunk of the spans (as `chunks` cuts them) to every rank.
void gatherChunks(std::vector<Span> parts) {
  const int w = comm->size, me = comm->rank;
  const size_t n = total(parts);
  float* flat = scratch(flatScratch, n);
  Layout l = chunks(n, w);
  copyRange(parts, flat, l.displs[me], l.displs[me] + l.counts[me], false);
  int rc = MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, flat, l.counts.data(), l.displs.data(), MPI_FLOAT,
                          MPI_COMM_WORLD);
  if (rc != MPI_SUCCESS) return comm->fail("parameter gather", rc);
  copyRange(parts, flat, 0, n, true);
}

// Every rank's chunk to root, whose spans are the whole arrays (its own chunk already in place); the other ranks
// pass their chunk alone, as one contiguous span, and need no room for the whole.
void gatherToRoot(std::vector<Span> parts, int root) {
  const int w = comm->size, me = comm->rank;
  int rc;
  if (me != root) {
    const Span& chunk = parts[0];
    rc = MPI_Gatherv(chunk.data, static_cast<int>(chunk.size), MPI_FLOAT, nullptr, nullptr, nullptr, MPI_FLOAT, root,
                     MPI_COMM_WORLD);
  } else {
    const size_t n = total(parts);
    float* flat = scratch(flatScratch, n);
    Layout l = chunks(n, w);
    copyRange(parts, flat, l.displs[me], l.displs[me] + l.counts[me], false);
    rc = MPI_Gatherv(MPI_IN_PLACE, l.counts[me], MPI_FLOAT, flat, l.counts.data(), l.displs.data(), MPI_FLOAT, root,
                     MPI_COMM_WORLD);
    if (rc == MPI_SUCCESS) copyRange(parts, flat, 0, n, true);
  }
  if (rc != MPI_SUCCESS) comm->fail("gather to rank " + std::to_string(root), rc);
}

// Root's arrays, taken end to end, to every rank.
void broadcastSpans(std::vector<Span> parts, int root) {
  const size_t n = total(parts);
  float* flat = scratch(flatScratch, n);
  if (comm->rank == root) copyRange(parts, flat, 0, n, false);
  int rc = MPI_Bcast(flat, static_cast<int>(n), MPI_FLOAT, root, MPI_COMM_WORLD);
  if (rc != MPI_SUCCESS) return comm->fail("broadcast", rc);
  if (comm->rank != root) copyRange(parts, flat, 0, n, true);
}

bool ready(const Napi::Env& env) {
  if (comm) return true;
  Napi::Error::New(env, "lmf_mpi: init() was not called").ThrowAsJavaScriptException();
  return false;
}

Napi::Value Finish(const Napi::Env& env, uint64_t ticket) {
  std::string err = comm->wait(ticket);
  if (!err.empty()) Napi::Error::New(env, "lmf_mpi: " + err).ThrowAsJavaScriptException();
  return env.Undefined();
}

Napi::Value Init(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!comm) {
    comm = new Communicator();
    std::string err = comm->start();
    if (!err.empty()) {
      Napi::Error::New(env, "lmf_mpi: " + err).ThrowAsJavaScriptException();
      return env.Undefined();
    }
  }
  Napi::Object o = Napi::Object::New(env);
  o.Set("rank", comm->rank);
  o.Set("size", comm->size);
  o.Set("localRank", comm->localRank);
  o.Set("localSize", comm->localSize);
  o.Set("processor", comm->processor);
  return o;
}

// Submits run(spans of argument 0, argument 1) on the communication thread; returns its ticket.
template <typename Run>
Napi::Value submitOnArrays(const Napi::CallbackInfo& info, Run run) {
  if (!ready(info.Env())) return info.Env().Undefined();
  std::vector<Span> parts = spans(info[0].As<Napi::Array>());
  int arg = 0;
  if (info[1].IsBoolean()) arg = info[1].ToBoolean().Value();
  if (info[1].IsNumber()) arg = info[1].As<Napi::Number>().Int32Value();
  return Napi::Number::New(info.Env(), static_cast<double>(comm->submit([parts, arg, run] { run(parts, arg); })));
}

// reduce(arrays, allreduce) -> ticket: the sum over ranks of the arrays taken end to end (see reduceBucket).
Napi::Value Reduce(const Napi::CallbackInfo& info) {
  return submitOnArrays(info, [](std::vector<Span> p, int allreduce) { reduceBucket(std::move(p), allreduce != 0); });
}

// gather(arrays) -> ticket: each rank's chunk of the arrays to all ranks.
Napi::Value Gather(const Napi::CallbackInfo& info) {
  return submitOnArrays(info, [](std::vector<Span> p, int) { gatherChunks(std::move(p)); });
}

// gatherToRoot(arrays, root) -> ticket: root passes the whole arrays, the others their chunk (see gatherToRoot).
Napi::Value GatherToRoot(const Napi::CallbackInfo& info) {
  return submitOnArrays(info, [](std::vector<Span> p, int root) { gatherToRoot(std::move(p), root); });
}

// broadcast(arrays, root) -> ticket: root's values into every rank's arrays.
Napi::Value Broadcast(const Napi::CallbackInfo& info) {
  return submitOnArrays(info, [](std::vector<Span> p, int root) { broadcastSpans(std::move(p), root); });
}

Napi::Value Wait(const Napi::CallbackInfo& info) {
  if (!ready(info.Env())) return info.Env().Undefined();
  return Finish(info.Env(), static_cast<uint64_t>(info[0].As<Napi::Number>().Int64Value()));
}

// sumScalars(Float64Array): in place, the sum over ranks in rank order (the same bits on every rank).
Napi::Value SumScalars(const Napi::CallbackInfo& info) {
  if (!ready(info.Env())) return info.Env().Undefined();
  Napi::Float64Array a = info[0].As<Napi::Float64Array>();
  double* values = a.Data();
  const int n = static_cast<int>(a.ElementLength());
  uint64_t ticket = comm->submit([values, n] {
    std::vector<double> all(static_cast<size_t>(n) * comm->size);
    int rc = MPI_Allgather(values, n, MPI_DOUBLE, all.data(), n, MPI_DOUBLE, MPI_COMM_WORLD);
    if (rc != MPI_SUCCESS) return comm->fail("scalar all-gather", rc);
    for (int i = 0; i < n; i++) {
      double acc = all[i];
      for (int s = 1; s < comm->size; s++) acc += all[static_cast<size_t>(s) * n + i];
      values[i] = acc;
    }
  });
  return Finish(info.Env(), ticket);
}

// allgatherBytes(Uint8Array) -> Uint8Array of size × length: every rank's bytes in rank order (equal lengths).
Napi::Value AllgatherBytes(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!ready(env)) return env.Undefined();
  Napi::Uint8Array a = info[0].As<Napi::Uint8Array>();
  const int n = static_cast<int>(a.ElementLength());
  Napi::Uint8Array out = Napi::Uint8Array::New(env, static_cast<size_t>(n) * comm->size);
  uint8_t* send = a.Data();
  uint8_t* recv = out.Data();
  uint64_t ticket = comm->submit([send, recv, n] {
    int rc = MPI_Allgather(send, n, MPI_BYTE, recv, n, MPI_BYTE, MPI_COMM_WORLD);
    if (rc != MPI_SUCCESS) comm->fail("all-gather", rc);
  });
  Finish(env, ticket);
  return out;
}

Napi::Value Barrier(const Napi::CallbackInfo& info) {
  if (!ready(info.Env())) return info.Env().Undefined();
  uint64_t ticket = comm->submit([] {
    int rc = MPI_Barrier(MPI_COMM_WORLD);
    if (rc != MPI_SUCCESS) comm->fail("barrier", rc);
  });
  return Finish(info.Env(), ticket);
}

// Waits for the submitted jobs, finalises MPI and stops the thread.
Napi::Value Finalize(const Napi::CallbackInfo& info) {
  if (comm) {
    comm->stop();
    delete comm;
    comm = nullptr;
  }
  return info.Env().Undefined();
}

Napi::Object Register(Napi::Env env, Napi::Object exports) {
  exports.Set("init", Napi::Function::New(env, Init));
  exports.Set("reduce", Napi::Function::New(env, Reduce));
  exports.Set("gather", Napi::Function::New(env, Gather));
  exports.Set("gatherToRoot", Napi::Function::New(env, GatherToRoot));
  exports.Set("broadcast", Napi::Function::New(env, Broadcast));
  exports.Set("wait", Napi::Function::New(env, Wait));
  exports.Set("sumScalars", Napi::Function::New(env, SumScalars));
  exports.Set("allgatherBytes", Napi::Function::New(env, AllgatherBytes));
  exports.Set("barrier", Napi::Function::New(env, Barrier));
  exports.Set("finalize", Napi::Function::New(env, Finalize));
  return exports;
}

}  // namespace

NODE_API_MODULE(lmf_mpi, Register)
