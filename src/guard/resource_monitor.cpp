// CPU and memory sampling (see resource_monitor.hpp).
#include "guard/resource_monitor.hpp"
#include "core/clock.hpp"

#include <sched.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

namespace odin::guard {

void ResourceMonitor::configure(double cpu_limit, uint64_t memory_limit) {
  cpu_limit_ = cpu_limit > 0 ? cpu_limit : available_cpus();
  memory_limit_ = memory_limit > 0 ? memory_limit : available_memory();
  last_cpu_seconds_ = read_cpu_seconds();
  last_sample_ns_ = core::steady_ns();
  rss_bytes_.store(read_rss_bytes(), std::memory_order_relaxed);
}

void ResourceMonitor::sample() {
  const double cpu = read_cpu_seconds();
  const int64_t now = core::steady_ns();
  const double elapsed = static_cast<double>(now - last_sample_ns_) / 1e9;
  if (elapsed > 0) {
    const double cores_used = (cpu - last_cpu_seconds_) / elapsed;
    cpu_percent_.store(100.0 * cores_used / cpu_limit_, std::memory_order_relaxed);
  }
  last_cpu_seconds_ = cpu;
  last_sample_ns_ = now;
  rss_bytes_.store(read_rss_bytes(), std::memory_order_relaxed);
}

uint64_t ResourceMonitor::read_rss_bytes() {
  std::FILE* f = std::fopen("/proc/self/statm", "r");
  if (!f) return 0;
  unsigned long size = 0, resident = 0;
  const int got = std::fscanf(f, "%lu %lu", &size, &resident);
  std::fclose(f);
  return got == 2 ? uint64_t{resident} * static_cast<uint64_t>(sysconf(_SC_PAGESIZE)) : 0;
}

double ResourceMonitor::read_cpu_seconds() {
  std::ifstream in("/proc/self/stat");
  std::string line;
  std::getline(in, line);
  // Fields after the command name (which may hold spaces) start after the last ')'.
  const auto close = line.rfind(')');
  if (close == std::string::npos) return 0.0;
  std::istringstream fields(line.substr(close + 2));
  std::string skip;
  for (int i = 0; i < 11; ++i)
    fields >> skip;  // state .. cmajflt (fields 3-13)
  unsigned long long utime = 0, stime = 0;
  fields >> utime >> stime;
  return static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

double ResourceMonitor::available_cpus() {
  double cpus = 1.0;
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) cpus = CPU_COUNT(&set);
  std::ifstream max("/sys/fs/cgroup/cpu.max");
  std::string quota, period;
  if (max >> quota >> period && quota != "max") {
    const double limit = std::stod(quota) / std::stod(period);
    if (limit > 0 && limit < cpus) cpus = limit;
  }
  return cpus;
}

uint64_t ResourceMonitor::available_memory() {
  uint64_t physical =
      static_cast<uint64_t>(sysconf(_SC_PHYS_PAGES)) * static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
  std::ifstream max("/sys/fs/cgroup/memory.max");
  std::string value;
  if (max >> value && value != "max") {
    const uint64_t limit = std::stoull(value);
    if (limit > 0 && limit < physical) physical = limit;
  }
  return physical;
}

}  // namespace odin::guard
