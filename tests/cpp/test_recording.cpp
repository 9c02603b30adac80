// Tests of a recording's commit (recording.hpp): the journal, the header in place, and what Reader::open makes of each
// state a killed commit can leave.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include "safestructures/checksum.hpp"
#include "safestructures/error.hpp"
#include "safestructures/format.hpp"
#include "safestructures/reader.hpp"
#include "safestructures/recording.hpp"
#include "test_util.hpp"

namespace safestructures {
namespace {

using test::Bytes;

constexpr std::uint64_t room = 65536;

std::string header_of(int tensors) {
  std::string json = "{\"__metadata__\":{\"" + std::string(recording_metadata_key) + "\":\"1\"}";
  for (int i = 0; i < tensors; ++i) json += "," + test::entry("t" + std::to_string(i), "U8", "[4]", 4 * i, 4 * i + 4);
  return json + "}";
}

// A recording of `tensors` 4-byte tensors committed as a writer commits it, and its path.
struct Recording {
  std::filesystem::path path = test::test_dir() / "rec.safetensors";
  int fd = -1;
  Recording() {
    Bytes start = test::raw_file(room, header_of(0) + std::string(room - header_of(0).size(), ' '));
    test::write_file_bytes(path, start);
    fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
  }
  ~Recording() { ::close(fd); }
  void append_and_commit(int from, int to) {
    const std::string data(4 * static_cast<std::size_t>(to - from), 'x');
    EXPECT_EQ(::pwrite(fd, data.data(), data.size(), static_cast<off_t>(8 + room + 4 * from)), static_cast<ssize_t>(data.size()));
    commit_recording_header(fd, header_of(to), room, 4 * static_cast<std::uint64_t>(to), false);
  }
  std::size_t tensors() const { return Reader::open(path).header().tensors.size(); }
};

TEST(Recording, CommitLeavesAStockValidFile) {
  Recording rec;
  rec.append_and_commit(0, 3);
  EXPECT_EQ(rec.tensors(), 3u);
  EXPECT_EQ(std::filesystem::file_size(rec.path), 8 + room + 12);
  EXPECT_NO_THROW(parse_header(test::read_file_bytes(rec.path)));  // no trailing bytes: any reader takes it
}

TEST(Recording, DataAppendedAfterTheCommitIsIgnored) {
  Recording rec;
  rec.append_and_commit(0, 2);
  ASSERT_EQ(::pwrite(rec.fd, "yyyyyy", 6, static_cast<off_t>(8 + room + 8)), 6);
  EXPECT_EQ(rec.tensors(), 2u);
}

// The journal a commit appends (docs/format.md section 9): the padded header, the magic, N, D, the digest.
Bytes journal_of(const std::string& padded, std::uint64_t data_size, bool damaged = false) {
  const std::string numbers = test::le64(padded.size()) + test::le64(data_size);
  const Bytes hashed = test::to_bytes(padded + numbers);
  const std::uint64_t digest = hash_bytes(hashed) ^ (damaged ? 1 : 0);
  return test::to_bytes(padded + std::string(recording_journal_magic) + numbers + test::le64(digest));
}

TEST(Recording, AWholeJournalWinsOverATornHeader) {
  Recording rec;
  rec.append_and_commit(0, 2);
  const Bytes old_file = test::read_file_bytes(rec.path);
  rec.append_and_commit(2, 300);  // a header of several pages
  const Bytes new_file = test::read_file_bytes(rec.path);
  const std::string padded = header_of(300) + std::string(room - header_of(300).size(), ' ');
  // A kill while the header was written in place: its first page new, the rest old; the journal whole behind the data.
  Bytes torn(new_file.begin(), new_file.begin() + 8 + 4096);
  torn.insert(torn.end(), old_file.begin() + 8 + 4096, old_file.begin() + 8 + room);
  torn.insert(torn.end(), new_file.begin() + 8 + room, new_file.end());
  for (const bool damaged : {false, true}) {
    Bytes file = torn;
    const Bytes journal = journal_of(padded, 1200, damaged);
    file.insert(file.end(), journal.begin(), journal.end());
    test::write_file_bytes(rec.path, file);
    EXPECT_TRUE(test::fails_with([&] { parse_header(file); }, ErrorCode::HeaderNotJson));
    if (damaged) {  // a journal that does not match its digest is none: the torn header is reported
      EXPECT_TRUE(test::fails_with([&] { Reader::open(rec.path); }, ErrorCode::HeaderNotJson, {"rec.safetensors"}));
      continue;
    }
    EXPECT_EQ(rec.tensors(), 300u);
    const int fd = ::open(rec.path.c_str(), O_RDWR | O_CLOEXEC);
    EXPECT_TRUE(finish_recording_commit(fd, room, false));
    ::close(fd);
    EXPECT_EQ(parse_header(test::read_file_bytes(rec.path)).tensors.size(), 300u);  // whole again, for any reader
  }
}

TEST(Recording, FinishingACommitWritesTheJournalInPlace) {
  Recording rec;
  rec.append_and_commit(0, 2);
  const auto committed = std::filesystem::file_size(rec.path);
  // A commit stopped after its journal: the journal is read back whole, and finishing it cuts it off.
  const std::string data(4, 'z');
  ASSERT_EQ(::pwrite(rec.fd, data.data(), 4, static_cast<off_t>(committed)), 4);
  EXPECT_FALSE(finish_recording_commit(rec.fd, room, false));  // data alone is no journal
  EXPECT_EQ(rec.tensors(), 2u);
  EXPECT_THROW(commit_recording_header(rec.fd, std::string(room + 1, ' '), room, 12, false), Error);
}

}  // namespace
}  // namespace safestructures
