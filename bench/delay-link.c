// A network link between two network namespaces with a fixed one-way delay and a line rate, for
// scripts/bench-distributed.sh: what `tc qdisc … netem delay 1ms rate 1gbit` on a veth pair does, for kernels
// built without netem (this project's CI machines). Two TUN devices, one in each namespace; every IP packet
// read from one is written to the other once it has been serialised at the line rate (behind the packets
// before it) and the delay has passed. A direction's queue holds at most 4 MB (a switch's buffer): packets
// beyond it are dropped, as a router drops them, and TCP backs off.
//
// usage (as root): delay-link NS_A NS_B DELAY_US RATE_MBIT   creates tun device "dl0" in both namespaces
// and forwards until SIGTERM; the caller sets addresses (`ip -n NS addr add … peer … dev dl0`) and MTU.
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#define MAX_PACKET 65536
#define QUEUE_BYTES (4u << 20)

typedef struct Packet {
  struct Packet* next;
  uint64_t deliver_ns;
  size_t len;
  unsigned char data[];
} Packet;

typedef struct {
  int from, to;
  Packet *head, *tail;
  size_t queued;
  uint64_t line_free_ns;  // when the line finishes serialising the last accepted packet
  uint64_t dropped;
} Direction;

static volatile sig_atomic_t stop = 0;
static void on_term(int sig) { (void)sig; stop = 1; }

static uint64_t now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static int open_tun_in(const char* ns) {
  char path[256];
  snprintf(path, sizeof path, "/var/run/netns/%s", ns);
  int nsfd = open(path, O_RDONLY);
  if (nsfd < 0 || setns(nsfd, CLONE_NEWNET) != 0) {
    perror(path);
    exit(1);
  }
  close(nsfd);
  int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK);
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  ifr.ifr_flags = IFF_TUN | IFF_NO_PI;
  strncpy(ifr.ifr_name, "dl0", IFNAMSIZ - 1);
  if (fd < 0 || ioctl(fd, TUNSETIFF, &ifr) != 0) {
    perror("tun");
    exit(1);
  }
  return fd;
}

static void receive(Direction* d, uint64_t delay_ns, double ns_per_byte, unsigned char* buf) {
  for (;;) {
    ssize_t n = read(d->from, buf, MAX_PACKET);
    if (n <= 0) return;
    if (d->queued + (size_t)n > QUEUE_BYTES) {
      d->dropped++;
      continue;
    }
    uint64_t t = now_ns();
    uint64_t start = d->line_free_ns > t ? d->line_free_ns : t;
    d->line_free_ns = start + (uint64_t)(ns_per_byte * (double)n);
    Packet* p = malloc(sizeof(Packet) + (size_t)n);
    p->next = NULL;
    p->deliver_ns = d->line_free_ns + delay_ns;
    p->len = (size_t)n;
    memcpy(p->data, buf, (size_t)n);
    if (d->tail) d->tail->next = p;
    else d->head = p;
    d->tail = p;
    d->queued += (size_t)n;
  }
}

// Writes the packets due; returns the time the next one is due (0: none queued).
static uint64_t deliver(Direction* d) {
  uint64_t t = now_ns();
  while (d->head && d->head->deliver_ns <= t) {
    Packet* p = d->head;
    if (write(d->to, p->data, p->len) < 0) { /* the peer's queue is full: dropped, as on a wire */ }
    d->head = p->next;
    if (!d->head) d->tail = NULL;
    d->queued -= p->len;
    free(p);
  }
  return d->head ? d->head->deliver_ns : 0;
}

int main(int argc, char** argv) {
  if (argc != 5) {
    fprintf(stderr, "usage: %s NS_A NS_B DELAY_US RATE_MBIT\n", argv[0]);
    return 2;
  }
  uint64_t delay_ns = (uint64_t)atoll(argv[3]) * 1000u;
  double ns_per_byte = 8.0 * 1000.0 / atof(argv[4]);  // 8 bits per byte at RATE Mbit/s
  int a = open_tun_in(argv[1]), b = open_tun_in(argv[2]);
  signal(SIGTERM, on_term);
  signal(SIGINT, on_term);
  Direction dirs[2] = {{a, b, NULL, NULL, 0, 0, 0}, {b, a, NULL, NULL, 0, 0, 0}};
  unsigned char* buf = malloc(MAX_PACKET);
  printf("ready\n");
  fflush(stdout);
  while (!stop) {
    uint64_t next = 0;
    for (int i = 0; i < 2; i++) {
      uint64_t due = deliver(&dirs[i]);
      if (due && (!next || due < next)) next = due;
    }
    int timeout_ms = -1;
    struct timespec wait_ts = {0, 0};
    if (next) {
      uint64_t t = now_ns();
      uint64_t left = next > t ? next - t : 0;
      // poll's millisecond timeout is too coarse for a 1 ms delay: sleep the rest precisely below
      timeout_ms = 0;
      wait_ts.tv_nsec = (long)(left < 50000 ? left : 50000);
    }
    struct pollfd fds[2] = {{a, POLLIN, 0}, {b, POLLIN, 0}};
    int ready = poll(fds, 2, next ? timeout_ms : 100);
    if (ready > 0) {
      if (fds[0].revents & POLLIN) receive(&dirs[0], delay_ns, ns_per_byte, buf);
      if (fds[1].revents & POLLIN) receive(&dirs[1], delay_ns, ns_per_byte, buf);
    } else if (next) {
      nanosleep(&wait_ts, NULL);
    }
  }
  fprintf(stderr, "delay-link: dropped %llu and %llu packets\n", (unsigned long long)dirs[0].dropped,
          (unsigned long long)dirs[1].dropped);
  return 0;
}
