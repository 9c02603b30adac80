// Temporary files left beside a target by saves killed mid-write: which ones a later save removes, and which it leaves.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "safestructures/error.hpp"
#include "safestructures/writer.hpp"
#include "test_util.hpp"

namespace safestructures {
namespace {

using test::Bytes;
using test::iota_bytes;
using test::tensor_of;

// A pid no process can have: above the kernel's pid_max.
long gone_pid() {
  long pid_max = 4194304;
  std::ifstream("/proc/sys/kernel/pid_max") >> pid_max;
  return pid_max + 1;
}

std::string temporary_name(const std::string& target, long pid, int n) {
  return "." + target + "." + std::to_string(pid) + "-" + std::to_string(n) + "-" + std::to_string(1000 + n) + ".tmp";
}

TEST(StaleTemporaries, OnlyThoseOfGoneUnlockedSavesOfTheSameTargetAreRemoved) {
  const auto dir = test::test_dir();
  const auto path = dir / "model.safetensors";
  const long gone = gone_pid();
  const Bytes some = iota_bytes(16);
  const std::string stale = temporary_name("model.safetensors", gone, 0);
  const std::string live = temporary_name("model.safetensors", ::getpid(), 1);          // this process is alive
  const std::string locked = temporary_name("model.safetensors", gone, 2);               // as another host's save
  const std::string other_target = temporary_name("other.safetensors", gone, 3);
  const std::string fifo = temporary_name("model.safetensors", gone, 4);
  const std::string link = temporary_name("model.safetensors", gone, 5);
  const std::string odd_forms[] = {".model.safetensors." + std::to_string(gone) + ".tmp", ".model.safetensors.x-0-1.tmp",
                                   ".model.safetensors.-0-1.tmp", ".model.safetensors.1-2-3-4.tmp"};
  for (const std::string& name : {stale, live, locked, other_target}) test::write_file_bytes(dir / name, some);
  for (const std::string& name : odd_forms) test::write_file_bytes(dir / name, some);
  ASSERT_EQ(::mkfifo((dir / fifo).c_str(), 0600), 0);
  test::write_file_bytes(dir / "outside", some);
  std::filesystem::create_symlink(dir / "outside", dir / link);
  const int held = ::open((dir / locked).c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(held, 0);
  ASSERT_EQ(::flock(held, LOCK_EX), 0);

  EXPECT_EQ(remove_stale_temporaries(path), 1u);
  EXPECT_FALSE(std::filesystem::exists(dir / stale));
  for (const std::string& name : {live, locked, other_target}) EXPECT_EQ(test::read_file_bytes(dir / name), some) << name;
  for (const std::string& name : odd_forms) EXPECT_TRUE(std::filesystem::exists(dir / name)) << name;
  EXPECT_TRUE(std::filesystem::is_fifo(dir / fifo));
  EXPECT_TRUE(std::filesystem::is_symlink(dir / link));
  EXPECT_EQ(test::read_file_bytes(dir / "outside"), some);
  // Once its lock is released, the file of a gone process is stale too.
  ::close(held);
  EXPECT_EQ(remove_stale_temporaries(path), 1u);
  EXPECT_FALSE(std::filesystem::exists(dir / locked));
  EXPECT_EQ(remove_stale_temporaries(path), 0u);
  EXPECT_EQ(remove_stale_temporaries(dir / "missing" / "model.safetensors"), 0u);
}

TEST(StaleTemporaries, ASaveRemovesThoseOfEarlierKilledSaves) {
  const auto dir = test::test_dir();
  const auto path = dir / "model.safetensors";
  const Bytes some = iota_bytes(16);
  const std::string stale = temporary_name("model.safetensors", gone_pid(), 0);
  const std::string live = temporary_name("model.safetensors", ::getpid(), 1);
  test::write_file_bytes(dir / stale, some);
  test::write_file_bytes(dir / live, some);
  const std::vector<WriteTensor> tensors{tensor_of("t", Dtype::U8, {16}, some)};
  write_file(path, tensors, nullptr);
  EXPECT_FALSE(std::filesystem::exists(dir / stale));
  EXPECT_EQ(test::read_file_bytes(dir / live), some);
  EXPECT_EQ(test::temporary_files_in(dir), std::vector<std::string>{live});
  EXPECT_EQ(test::read_file_bytes(path), write_bytes(tensors, nullptr));
}

TEST(StaleTemporaries, ASavesOwnTemporaryFileIsLockedWhileItIsWritten) {
  // A forked child's save is stopped part way through (a file size limit raises SIGXFSZ, whose handler stops the
  // child): its temporary file exists and is locked, as a save still running.
  const auto dir = test::test_dir();
  const auto path = dir / "model.safetensors";
  const Bytes big = iota_bytes(3 << 20);
  const std::vector<WriteTensor> tensors{tensor_of("big", Dtype::U8, {big.size()}, big)};
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    rlimit limited{};
    ::getrlimit(RLIMIT_FSIZE, &limited);
    limited.rlim_cur = 1 << 20;
    ::signal(SIGXFSZ, [](int) { ::raise(SIGSTOP); });
    ::setrlimit(RLIMIT_FSIZE, &limited);
    try {
      write_file(path, tensors, nullptr);
    } catch (...) {
    }
    ::_exit(0);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, WUNTRACED), child);
  ASSERT_TRUE(WIFSTOPPED(status));
  const auto during = test::temporary_files_in(dir);
  ASSERT_EQ(during.size(), 1u);
  const int fd = ::open((dir / during[0]).c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  EXPECT_NE(::flock(fd, LOCK_EX | LOCK_NB), 0);
  EXPECT_EQ(errno, EWOULDBLOCK);
  ::close(fd);
  // The stopped save is alive: a save of the same target leaves its file alone.
  const Bytes small = iota_bytes(4);
  write_file(path, std::vector<WriteTensor>{tensor_of("t", Dtype::U8, {4}, small)}, nullptr);
  EXPECT_EQ(test::temporary_files_in(dir), during);
  ::kill(child, SIGKILL);
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  // Killed, it left the file behind; the next save removes it.
  EXPECT_EQ(test::temporary_files_in(dir), during);
  write_file(path, std::vector<WriteTensor>{tensor_of("t", Dtype::U8, {4}, small)}, nullptr);
  EXPECT_TRUE(test::temporary_files_in(dir).empty());
}

}  // namespace
}  // namespace safestructures
