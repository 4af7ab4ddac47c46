// Which CPUs this process may run on, and binding all of its threads to some of them: the serving
// command gives a locally spawned attention worker cores of its own and keeps the model side (and
// its HTTP thread) off them, so a layer's hand-off never waits for a core the other side holds.
#pragma once
#include <string>
#include <vector>

namespace lk {

/** The CPUs the calling thread may run on, ascending (empty where the OS has no such call). */
std::vector<int> allowedCpus();

/**
 * Binds every thread of this process (and so every thread they start later) to `cpus`. Returns
 * the number of threads bound; on failure returns -1 with `error` set, having changed nothing if
 * the first thread refused (a CPU outside the allowed set is refused for every thread alike).
 */
int bindProcessToCpus(const std::vector<int>& cpus, std::string& error);

}  // namespace lk
