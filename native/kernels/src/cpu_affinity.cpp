#include "cpu_affinity.h"

#include <cerrno>
#include <cstdlib>
#include <cstring>

#if defined(__linux__)
#include <dirent.h>
#include <sched.h>
#include <sys/types.h>
#include <unistd.h>
#endif

namespace lk {

std::vector<int> allowedCpus() {
  std::vector<int> out;
#if defined(__linux__)
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) != 0) return out;
  for (int c = 0; c < CPU_SETSIZE; c++)
    if (CPU_ISSET(c, &set)) out.push_back(c);
#endif
  return out;
}

int bindProcessToCpus(const std::vector<int>& cpus, std::string& error) {
#if defined(__linux__)
  if (cpus.empty()) {
    error = "no CPUs to bind to";
    return -1;
  }
  cpu_set_t set;
  CPU_ZERO(&set);
  for (int c : cpus) {
    if (c < 0 || c >= CPU_SETSIZE) {
      error = "CPU " + std::to_string(c) + " is out of range (0.." + std::to_string(CPU_SETSIZE - 1) + ")";
      return -1;
    }
    CPU_SET(c, &set);
  }
  // The calling thread first: a set the OS refuses (a CPU offline or outside this container's
  // cpuset) is refused here, before any other thread has moved.
  if (sched_setaffinity(0, sizeof set, &set) != 0) {
    error = errno == EINVAL ? std::string("none of them is online and allowed to this process")
                            : std::string("the OS refused (") + std::strerror(errno) + ")";
    return -1;
  }
  // Then every other thread, listed by the kernel; one that exits meanwhile (ESRCH) is skipped.
  // A thread started during the walk is started by a thread of this process: bound already if its
  // creator was, else found here once the creator is (the walk repeats until a pass binds none).
  int bound = 1;
  const pid_t self = pid_t(gettid());
  std::vector<pid_t> done{self};
  for (bool again = true; again;) {
    again = false;
    DIR* dir = opendir("/proc/self/task");
    if (!dir) {
      error = std::string("cannot list this process's threads (") + std::strerror(errno) + ")";
      return -1;
    }
    while (dirent* e = readdir(dir)) {
      if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
      const pid_t tid = pid_t(std::strtol(e->d_name, nullptr, 10));
      bool seen = false;
      for (pid_t d : done) seen = seen || d == tid;
      if (seen) continue;
      done.push_back(tid);
      if (sched_setaffinity(tid, sizeof set, &set) == 0) {
        bound++;
        again = true;
      } else if (errno != ESRCH) {
        error = "thread " + std::to_string(tid) + " could not be bound (" + std::strerror(errno) + ")";
        closedir(dir);
        return -1;
      }
    }
    closedir(dir);
  }
  return bound;
#else
  (void)cpus;
  error = "binding threads to CPUs needs Linux";
  return -1;
#endif
}

}  // namespace lk
