// Keeps asynchronous signals off the threads while oneDNN runs. oneDNN 2.x's generated f32 GEMM kernels (the
// `gemm:jit` every f32 product takes on AVX2, and AVX-512 without bf16) point the stack pointer into a heap
// workspace while they run (oneDNN issue #4845, fixed in 3.11.1; Debian ships 2.6.3): a signal handled on such a
// thread writes its frame over the heap. Any handled signal can land there: Ctrl-C or SIGTERM in the middle of a
// training step (the trainer then saves a checkpoint), SIGWINCH from a terminal resize, a profiler's SIGPROF
// (`node --cpu-prof` aborted within seconds on heap corruption; a flood of SIGUSR2 crashed a process).
//
// The OpenMP workers block them for good (they never handle signals); the calling thread blocks them for the
// duration of one product and takes them right after. Meanwhile the kernel hands a process-wide signal (SIGINT,
// SIGTERM) to a thread that does not block it, Node's own, whose handler only queues it for the event loop.
// Faults (SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGSYS) stay unblocked: they belong to the instruction that
// raised them.
#pragma once
#include <omp.h>
#include <pthread.h>
#include <signal.h>
#include <atomic>

namespace lmf {

class SignalShield {
 public:
  SignalShield() {
    shieldWorkers();
    pthread_sigmask(SIG_BLOCK, &asyncSignals(), &saved_);
  }
  ~SignalShield() { pthread_sigmask(SIG_SETMASK, &saved_, nullptr); }
  SignalShield(const SignalShield&) = delete;
  SignalShield& operator=(const SignalShield&) = delete;

 private:
  sigset_t saved_;

  static const sigset_t& asyncSignals() {
    static const sigset_t set = [] {
      sigset_t s;
      sigfillset(&s);
      for (int fault : {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGSYS}) sigdelset(&s, fault);
      return s;
    }();
    return set;
  }

  // libgomp keeps its worker threads between parallel regions, so a worker blocks once; the team is masked again
  // only when it grows (src/threads.ts can change the count)
  static void shieldWorkers() {
    static std::atomic<int> shielded{1};
    const int team = omp_get_max_threads();
    if (team <= shielded.load(std::memory_order_relaxed)) return;
#pragma omp parallel num_threads(team)
    if (omp_get_thread_num() != 0) pthread_sigmask(SIG_BLOCK, &asyncSignals(), nullptr);
    shielded.store(team, std::memory_order_relaxed);
  }
};

}  // namespace lmf
