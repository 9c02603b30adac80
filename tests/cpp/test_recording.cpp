// Tests of a recording's commit (recording.hpp): the journal, the header in place, and what Reader::open makes of each
// state a killed commit can leave.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

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
  for (int i = 0; i < tensors; ++i) {
    json.append(",").append(test::entry(std::string("t").append(std::to_string(i)), "U8", "[4]", 4 * i, 4 * i + 4));
  }
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
    EXPECT_TRUE(finish_recording_commit(fd, false));
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
  EXPECT_FALSE(finish_recording_commit(rec.fd, false));  // data alone is no journal
  EXPECT_EQ(rec.tensors(), 2u);
  EXPECT_THROW(commit_recording_header(rec.fd, std::string(room + 1, ' '), room, 12, false), Error);
}

TEST(Recording, ARecordsBytesThatEndTheFileAsAJournalAreTheRecords) {
  // A committed recording whose last tensor holds a whole journal for the file's size (crafted case 80): readers and a
  // continuing writer read the header in place, which describes those bytes, not the journal they spell.
  Recording rec;
  rec.append_and_commit(0, 2);
  const std::string forged = std::string("{\"__metadata__\":{\"").append(recording_metadata_key).append("\":\"1\",\"evil\":\"yes\"}}");
  const Bytes journal = journal_of(forged + std::string(room - forged.size(), ' '), 8);  // the file: 8 + room + 8 + room + 32
  ASSERT_EQ(::pwrite(rec.fd, journal.data(), journal.size(), 8 + room + 8), static_cast<ssize_t>(journal.size()));
  std::string header = header_of(2);
  header.pop_back();
  const std::string shape = std::string("[").append(std::to_string(journal.size())).append("]");
  header.append(",").append(test::entry("blob", "U8", shape, 8, 8 + journal.size())).append("}");
  commit_recording_header(rec.fd, header, room, 8 + journal.size(), false);
  ASSERT_TRUE(read_recording_journal(rec.path, default_max_header_size));  // it is a whole journal, by its footer
  const Reader reader = Reader::open(rec.path);
  EXPECT_EQ(reader.header().tensors.size(), 3u);  // before: 0, and the metadata "evil": "yes"
  EXPECT_EQ(reader.header().find_metadata("evil"), nullptr);
  const auto size = std::filesystem::file_size(rec.path);
  EXPECT_FALSE(finish_recording_commit(rec.fd, false));  // before: the forged header written in place, the blob cut
  EXPECT_EQ(std::filesystem::file_size(rec.path), size);
  EXPECT_EQ(Reader::open(rec.path).header().tensors.size(), 3u);
}

TEST(Recording, AFileThatIsNoRecordingKeepsTheJournalItsDataSpells) {
  // A plain file whose one tensor is a whole journal: a writer continuing it (mode "a") must leave it as it is.
  const std::string header = std::string("{").append(test::entry("blob", "U8", "[40]", 0, 40)).append("}");
  const std::string padded = header + std::string((8 - header.size() % 8) % 8, ' ');
  Bytes file = test::raw_file(padded.size(), padded);
  const Bytes journal = journal_of("{}      ", file.size() + 40 - 40 - 16);  // a room of 8, for the file's size
  file.insert(file.end(), journal.begin(), journal.end());
  const auto path = test::test_dir() / "plain.safetensors";
  test::write_file_bytes(path, file);
  ASSERT_TRUE(read_recording_journal(path, default_max_header_size));
  EXPECT_EQ(Reader::open(path).header().tensors.size(), 1u);
  const int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
  EXPECT_FALSE(finish_recording_commit(fd, false));  // before: true, the file cut by 40 bytes and its header replaced
  ::close(fd);
  EXPECT_EQ(test::read_file_bytes(path), file);
}

TEST(Recording, AJournalWhoseHeaderNoReaderTakesIsLeftAsItIs) {
  // A torn header and a whole journal whose header is not a valid one (here: a tensor past its data): readers refuse
  // the file, and finishing the commit leaves it as it is (before: the broken header written in place, the file cut).
  Recording rec;
  rec.append_and_commit(0, 2);
  Bytes file = test::read_file_bytes(rec.path);
  file[8] = std::byte{'x'};
  std::string broken = header_of(9);
  const Bytes journal = journal_of(broken + std::string(room - broken.size(), ' '), 8);
  file.insert(file.end(), journal.begin(), journal.end());
  test::write_file_bytes(rec.path, file);
  EXPECT_TRUE(test::fails_with([&] { Reader::open(rec.path); }, ErrorCode::DataPastEnd));
  const int fd = ::open(rec.path.c_str(), O_RDWR | O_CLOEXEC);
  EXPECT_FALSE(finish_recording_commit(fd, false));
  ::close(fd);
  EXPECT_EQ(test::read_file_bytes(rec.path), file);
}

TEST(Recording, ARecordWhoseBytesWouldEndTheFileAsAJournalIsRefused) {
  // The record's last bytes are a footer whose room, size and digest fit the file it would make: written, readers would
  // take them for the header until the next commit (or for good, after a kill). Whole, or split over two records.
  const auto path = test::test_dir() / "forge.bin";
  const std::string text = "{}      ";
  for (const bool damaged : {false, true}) {
    for (const bool split : {false, true}) {
      test::write_file_bytes(path, Bytes(100, std::byte{1}));
      const Bytes journal = journal_of(text, 100 + 40 - 40 - 16, damaged);
      const auto record = [&](std::size_t from, std::size_t to) {
        const std::vector<WriteTensor> tensors = {{"j", Dtype::U8, {to - from}, journal.data() + from, {}}};
        const int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
        struct Close {
          int fd;
          ~Close() { ::close(fd); }
        } close{fd};
        write_recording_data(fd, 100 + from, plan_layout(tensors, nullptr), tensors);
      };
      if (split) record(0, 20);
      const auto last = [&] { record(split ? 20 : 0, journal.size()); };
      if (damaged) {
        last();
        EXPECT_EQ(std::filesystem::file_size(path), 140u);
        continue;
      }
      EXPECT_TRUE(test::fails_with(last, ErrorCode::InvalidArgument, {"would end the recording as a commit's journal does"}));
      EXPECT_EQ(std::filesystem::file_size(path), split ? 120u : 108u);  // its last 32 bytes never written
    }
  }
  // A record of no bytes after bytes spelling a journal (committed, which readers tell from a journal) is written.
  const Bytes journal = journal_of(text, 100 + 40 - 40 - 16);
  Bytes file(100, std::byte{1});
  file.insert(file.end(), journal.begin(), journal.end());
  test::write_file_bytes(path, file);
  const std::vector<WriteTensor> none = {{"e", Dtype::U8, {0}, nullptr, {}}};
  const int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
  EXPECT_NO_THROW(write_recording_data(fd, 140, plan_layout(none, nullptr), none));
  ::close(fd);
  EXPECT_EQ(std::filesystem::file_size(path), 140u);
}

TEST(Recording, GrowingTheRoomInsertsBlocksOrSaysItCannot) {
  // A room whose data starts on a block: grown by inserting blocks before the data where the file system can.
  constexpr std::uint64_t small = 4088;
  const auto path = test::test_dir() / "grow.safetensors";
  test::write_file_bytes(path, test::raw_file(small, header_of(0) + std::string(small - header_of(0).size(), ' ')));
  const int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
  const std::string data(4 * 100, 'x');
  ASSERT_EQ(::pwrite(fd, data.data(), data.size(), 8 + small), static_cast<ssize_t>(data.size()));
  struct stat before {};
  ::fstat(fd, &before);
  EXPECT_THROW(grow_recording_header(fd, header_of(100), small, small + 100, 400, 400, false), Error);  // not a room of 8s
  const bool inserted = grow_recording_header(fd, header_of(100), small, small + 3 * 4096, 400, 400, false);
  if (inserted) {
    EXPECT_EQ(std::filesystem::file_size(path), 8 + small + 3 * 4096 + 400);
    const Bytes file = test::read_file_bytes(path);
    EXPECT_EQ(load_le64(file.data()), small + 3 * 4096);
    EXPECT_EQ(parse_header(file).tensors.size(), 100u);  // stock-valid: spaces over the inserted zeros
  } else {  // a file system that cannot insert: nothing changed
    EXPECT_EQ(std::filesystem::file_size(path), 8 + small + 400);
  }
  struct stat now {};
  ::fstat(fd, &now);
  EXPECT_EQ(now.st_ino, before.st_ino);
  ::close(fd);
  // A room whose data does not start on a block is never grown in place: the file stays as it was.
  Recording rec;
  rec.append_and_commit(0, 2);
  const auto committed = std::filesystem::file_size(rec.path);
  EXPECT_FALSE(grow_recording_header(rec.fd, header_of(2), room, room + 4096, 8, 8, false));
  EXPECT_EQ(std::filesystem::file_size(rec.path), committed);
  EXPECT_EQ(rec.tensors(), 2u);
}

TEST(Recording, AJournalForAGrownRoomIsReadWhenTheSizeShowsTheInsert) {
  // The prefix says the old room; the journal a larger one; the file's size matches the journal only once blocks
  // were inserted before the data.
  constexpr std::uint64_t small = 4088, grown = small + 4096;
  const std::string old_text = header_of(0) + std::string(small - header_of(0).size(), ' ');
  const std::string new_text = header_of(5) + std::string(grown - header_of(5).size(), ' ');
  const std::string data(20, 'x');
  Bytes footer(32);
  std::memcpy(footer.data(), recording_journal_magic.data(), 8);
  for (int i = 0; i < 8; ++i) {
    footer[8 + i] = static_cast<std::byte>((grown >> (8 * i)) & 0xff);
    footer[16 + i] = static_cast<std::byte>((20ull >> (8 * i)) & 0xff);
  }
  StreamHash hash;
  hash.update(reinterpret_cast<const std::byte*>(new_text.data()), new_text.size());
  hash.update(footer.data() + 8, 16);
  const std::uint64_t digest = hash.digest();
  for (int i = 0; i < 8; ++i) footer[24 + i] = static_cast<std::byte>((digest >> (8 * i)) & 0xff);
  const auto path = test::test_dir() / "grown.safetensors";
  for (const bool inserted : {false, true}) {
    Bytes file = test::raw_file(small, old_text);
    if (inserted) file.resize(file.size() + (grown - small), std::byte{0});
    for (char c : data) file.push_back(static_cast<std::byte>(c));
    for (char c : new_text) file.push_back(static_cast<std::byte>(c));
    file.insert(file.end(), footer.begin(), footer.end());
    test::write_file_bytes(path, file);
    EXPECT_EQ(Reader::open(path).header().tensors.size(), inserted ? 5u : 0u);
    const int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
    EXPECT_EQ(finish_recording_commit(fd, false), inserted);
    ::close(fd);
    if (inserted) {
      const Bytes whole = test::read_file_bytes(path);
      EXPECT_EQ(load_le64(whole.data()), grown);
      EXPECT_EQ(whole.size(), 8 + grown + 20);
      EXPECT_EQ(parse_header(whole).tensors.size(), 5u);
    }
  }
}


// A header whose data begins with the padding (`padding` bytes of zeros) and then `tensors` 4-byte tensors.
std::string padded_header_of(std::uint64_t padding, int tensors) {
  std::string json = "{\"__metadata__\":{\"" + std::string(recording_metadata_key) + "\":\"1\"}," +
                     test::entry(recording_padding_tensor, "U8", "[" + std::to_string(padding) + "]", 0, padding);
  for (int i = 0; i < tensors; ++i) {
    json += "," + test::entry("t" + std::to_string(i), "U8", "[4]", padding + 4 * i, padding + 4 * i + 4);
  }
  return json + "}";
}

TEST(Recording, ACommitGrowsTheRoomIntoThePaddingWithoutMovingTheData) {
  constexpr std::uint64_t small = 4088, padding = 8192;
  const auto path = test::test_dir() / "padded.safetensors";
  const std::string start = padded_header_of(padding, 0);
  test::write_file_bytes(path, test::raw_file(small, start + std::string(small - start.size(), ' ')));
  const int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
  ASSERT_EQ(::ftruncate(fd, 8 + small + padding), 0);  // the padding: a hole of zeros
  std::string data;
  for (int i = 0; i < 100; ++i) data.append("t").append(1, static_cast<char>('A' + i % 26)).append("..");
  ASSERT_EQ(::pwrite(fd, data.data(), data.size(), 8 + small + padding), static_cast<ssize_t>(data.size()));
  // The room takes over a page of the padding: the data buffer starts a page later and is a page shorter.
  commit_recording_header(fd, padded_header_of(padding - 4096, 100), small + 4096, padding - 4096 + data.size(), false);
  ::close(fd);
  EXPECT_EQ(std::filesystem::file_size(path), 8 + small + padding + data.size());  // nothing moved
  const Bytes file = test::read_file_bytes(path);
  EXPECT_EQ(load_le64(file.data()), small + 4096);
  EXPECT_NO_THROW(parse_header(file));  // stock-valid: the padding's first page is the header's spaces now
  const Reader reader = Reader::open(path);
  EXPECT_EQ(reader.header().tensors.size(), 101u);
  const auto last = reader.tensor("t99").bytes;
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(last.data()), last.size()), data.substr(396));
}

TEST(Recording, ARecordsDataIsWrittenInDataOrderWithoutItsHeader) {
  std::vector<std::int64_t> big(300000);
  for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<std::int64_t>(i);
  const std::uint8_t small[3] = {7, 8, 9};
  const std::vector<WriteTensor> tensors = {
      {"b", Dtype::U8, {3}, reinterpret_cast<const std::byte*>(small), {}},
      {"a", Dtype::I64, {big.size()}, reinterpret_cast<const std::byte*>(big.data()), {}}};
  const Layout layout = plan_layout(tensors, nullptr);
  const auto path = test::test_dir() / "record.bin";
  test::write_file_bytes(path, Bytes(100, std::byte{1}));
  const int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
  write_recording_data(fd, 100, layout, tensors);
  ::close(fd);
  const Bytes file = test::read_file_bytes(path);
  ASSERT_EQ(file.size(), 100 + layout.data_size);
  EXPECT_EQ(file[99], std::byte{1});  // what was there before the offset is untouched
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    const auto size = static_cast<std::size_t>(layout.sizes[i]);
    EXPECT_EQ(std::memcmp(file.data() + 100 + layout.offsets[i], tensors[i].data, size), 0) << tensors[i].name;
  }
}

}  // namespace
}  // namespace safestructures
