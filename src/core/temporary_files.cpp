// The temporary files of atomic saves: their names (which carry the writer's pid), and removing those that killed
// saves left behind.
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <chrono>

#include "safestructures/writer.hpp"

namespace safestructures {
namespace {

// The start of the temporary names of saves of `path` (".NAME."), NAME cut to keep them within NAME_MAX.
std::string temporary_prefix(const std::filesystem::path& path) {
  std::string base = path.filename().string();
  if (base.size() > 180) base.resize(180);
  return "." + base + ".";
}

// The pid in a temporary name's "PID-N-STAMP" part, or -1 when the part is not of that form.
pid_t temporary_pid(std::string_view stamp) {
  const std::size_t first = stamp.find('-');
  const std::size_t second = stamp.find('-', first + 1);
  const bool of_form = stamp.find_first_not_of("0123456789-") == std::string_view::npos &&
                       std::count(stamp.begin(), stamp.end(), '-') == 2 && first > 0 && second > first + 1 &&
                       second + 1 < stamp.size();
  pid_t pid = 0;
  if (!of_form || first > 9) return -1;
  std::from_chars(stamp.data(), stamp.data() + first, pid);
  return pid > 0 ? pid : -1;
}

// Whether a temporary file in `dir` (open at `dfd`) was left by a save that is over: no process holds its lock and
// the process named in it is gone. Takes the lock, so that no save can start using the file meanwhile.
bool is_stale(int dfd, const char* name, pid_t pid) {
  if (::kill(pid, 0) == 0 || errno != ESRCH) return false;  // alive (or not ours to signal): still in use
  // O_NONBLOCK: a FIFO given this name must not block the save; O_NOFOLLOW: a link is never followed.
  const int fd = ::openat(dfd, name, O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return false;
  struct stat opened {}, named {};
  const bool stale = ::fstat(fd, &opened) == 0 && S_ISREG(opened.st_mode) && ::flock(fd, LOCK_EX | LOCK_NB) == 0 &&
                     ::fstatat(dfd, name, &named, AT_SYMLINK_NOFOLLOW) == 0 && named.st_dev == opened.st_dev &&
                     named.st_ino == opened.st_ino && ::unlinkat(dfd, name, 0) == 0;
  ::close(fd);
  return stale;
}

}  // namespace

std::size_t remove_stale_temporaries(const std::filesystem::path& path) {
  const std::string dir = path.parent_path().empty() ? std::string(".") : path.parent_path().string();
  const std::string prefix = temporary_prefix(path);
  constexpr std::string_view suffix = ".tmp";
  DIR* listing = ::opendir(dir.c_str());
  if (listing == nullptr) return 0;
  std::size_t removed = 0;
  while (const dirent* entry = ::readdir(listing)) {
    const std::string_view name = entry->d_name;
    if (name.size() <= prefix.size() + suffix.size() || !name.starts_with(prefix) || !name.ends_with(suffix)) continue;
    const pid_t pid = temporary_pid(name.substr(prefix.size(), name.size() - prefix.size() - suffix.size()));
    if (pid > 0 && is_stale(::dirfd(listing), entry->d_name, pid)) ++removed;
  }
  ::closedir(listing);
  return removed;
}

// ".NAME.PID-N-STAMP.tmp": the writer's pid first, so that a later save can tell a live save's file from a dead one's.
std::string temporary_path_for(const std::filesystem::path& path) {
  static std::atomic<unsigned> counter{0};
  const auto stamp = std::to_string(::getpid()) + "-" + std::to_string(counter.fetch_add(1)) + "-" +
                     std::to_string(std::chrono::steady_clock::now().time_since_epoch().count() & 0xffffff);
  return (path.parent_path() / (temporary_prefix(path) + stamp + ".tmp")).string();
}

}  // namespace safestructures
