// libFuzzer target: a recording's readers (docs/format.md section 9). The input is written as a file and read with
// Reader::open (the header in place, or the journal ending the file), the journal read back, the recording continued
// as mode="a" continues it (RecordingWriter's reading constructor, its header rendered again and parsed back), and the
// commit a killed writer left completed on a copy. A footer whose magic and numbers fit the input gets its true digest,
// so that the fuzzer reaches the journal's header. safestructures::Error is the expected outcome for bad input;
// anything else is a bug.
#include <fcntl.h>
#include <unistd.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "fuzz_common.hpp"
#include "safestructures/checksum.hpp"
#include "safestructures/container.hpp"
#include "safestructures/error.hpp"
#include "safestructures/format.hpp"
#include "safestructures/reader.hpp"
#include "safestructures/recording.hpp"
#include "safestructures/recording_writer.hpp"

using namespace safestructures;

namespace {

void store_le64(std::uint8_t* out, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) out[i] = static_cast<std::uint8_t>((v >> (8 * i)) & 0xff);
}

// The input with a journal footer's digest made true, where its magic and numbers fit the input's size.
std::vector<std::uint8_t> with_true_digest(const std::uint8_t* data, std::size_t size) {
  std::vector<std::uint8_t> file(data, data + size);
  if (size < 40 || std::memcmp(file.data() + size - 32, recording_journal_magic.data(), 8) != 0) return file;
  const std::uint64_t room = load_le64(file.data() + size - 24), data_size = load_le64(file.data() + size - 16);
  if (room == 0 || room % 8 != 0 || room > (size - 40) / 2 || data_size != size - 40 - 2 * room) return file;
  StreamHash hash;
  hash.update(reinterpret_cast<const std::byte*>(file.data() + size - 32 - room), room);
  hash.update(reinterpret_cast<const std::byte*>(file.data() + size - 24), 16);
  store_le64(file.data() + size - 8, hash.digest());
  return file;
}

void write_file(const std::filesystem::path& path, const std::vector<std::uint8_t>& bytes) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  FUZZ_CHECK(fd >= 0, "cannot create the scratch file");
  FUZZ_CHECK(::write(fd, bytes.data(), bytes.size()) == static_cast<ssize_t>(bytes.size()), "cannot write the scratch file");
  ::close(fd);
}

const std::filesystem::path& scratch(const char* which) {
  static const std::filesystem::path dir = std::filesystem::temp_directory_path() / ("fuzz_recording." + std::to_string(::getpid()));
  static const bool made = std::filesystem::create_directories(dir) || true;
  (void)made;
  static std::filesystem::path paths[2] = {dir / "a.safetensors", dir / "b.safetensors"};
  return paths[which[0] == 'b'];
}

// What a Reader promises of the file it read: each tensor's bytes lie in the file (touched for AddressSanitizer).
void check_reader(const Reader& reader) {
  volatile unsigned char sink = 0;
  for (const TensorInfo& t : reader.header().tensors) {
    const auto bytes = reader.tensor(t).bytes;
    FUZZ_CHECK(bytes.size() == t.nbytes(), "a tensor view of another size than its entry");
    unsigned char x = 0;
    for (std::byte b : bytes) x ^= static_cast<unsigned char>(b);
    sink = sink ^ x;
  }
}

// Continues the recording as mode="a" does; the header it renders (what its next commit writes) must parse, holding
// every tensor it took back.
void check_continuing(const Header& header) {
  std::optional<RecordingWriter> writer;
  if (!fuzz::expect_ok_or_error("RecordingWriter(header)", [&] { writer.emplace(header, std::nullopt, 4096, "fuzz"); })) return;
  const std::uint64_t padding = writer->data_end() - 8 - header.header_size - writer->data_size();
  const std::string text(writer->header(padding));
  fuzz::expect_ok_or_error("the continued header", [&] {
    const Header again = parse_header_text(text, padding + writer->data_size());
    FUZZ_CHECK(again.tensors.size() == header.tensors.size(), "the continued header lost or gained tensors");
  });
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::vector<std::uint8_t> file = with_true_digest(data, size);
  const std::filesystem::path& path = scratch("a");
  write_file(path, file);
  std::optional<Reader> reader;
  const bool ok = fuzz::expect_ok_or_error("Reader::open", [&] { reader.emplace(Reader::open(path)); });
  (void)read_recording_journal(path, default_max_header_size);
  if (ok) {
    check_reader(*reader);
    if (reader->header().find_metadata(recording_metadata_key) != nullptr) check_continuing(reader->header());
  }
  // A killed commit completed (on a copy): what it leaves reads as the journal read before, or fails as any file.
  const std::filesystem::path& copy = scratch("b");
  write_file(copy, file);
  const int fd = ::open(copy.c_str(), O_RDWR | O_CLOEXEC);
  FUZZ_CHECK(fd >= 0, "cannot open the scratch copy");
  bool finished = false;
  fuzz::expect_ok_or_error("finish_recording_commit", [&] { finished = finish_recording_commit(fd, false); });
  ::close(fd);
  if (finished) {
    FUZZ_CHECK(ok, "a commit was completed in a file that no reader reads");
    std::optional<Reader> after;
    FUZZ_CHECK(fuzz::expect_ok_or_error("Reader::open after finishing", [&] { after.emplace(Reader::open(copy)); }),
               "a completed commit left a file that no reader reads");
    FUZZ_CHECK(after->header().tensors.size() == reader->header().tensors.size(), "a completed commit changed the tensors read");
  }
  return 0;
}
