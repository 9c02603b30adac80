// libFuzzer target: the safetensors container. Arbitrary bytes go through parse_header and Reader::from_buffer; for
// a file they accept, every documented guarantee of a validated header is checked, every tensor view is read byte by
// byte, and the file is written again with the writer and parsed back (same tensors, same bytes, same metadata).
// safestructures::Error is the expected outcome for bad input; anything else is a bug.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "fuzz_common.hpp"
#include "safestructures/checksum.hpp"
#include "safestructures/container.hpp"
#include "safestructures/error.hpp"
#include "safestructures/reader.hpp"
#include "safestructures/structure.hpp"
#include "safestructures/writer.hpp"

using namespace safestructures;

namespace {

std::uint64_t prefix_of(std::span<const std::byte> b) {
  std::uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<std::uint64_t>(b[static_cast<std::size_t>(i)]);
  return v;
}

Metadata sorted(Metadata m) {
  std::sort(m.begin(), m.end());
  return m;
}

// Everything a validated header promises about the file it came from.
void check_header(const Header& h, std::span<const std::byte> file) {
  FUZZ_CHECK(file.size() >= 8, "accepted a file shorter than the prefix");
  FUZZ_CHECK(h.header_size == prefix_of(file), "header_size differs from the prefix");
  FUZZ_CHECK(h.data_offset() <= file.size(), "data offset past the end");
  const std::uint64_t data_size = file.size() - h.data_offset();
  // A header of a few tensors finds names by comparing them: its index is built only past that many.
  FUZZ_CHECK(h.tensors.size() <= Header::small_header_tensors ? h.index.empty() : h.index.size() == h.tensors.size(),
             "index and tensor list disagree");
  if (!h.has_metadata) FUZZ_CHECK(h.metadata.empty(), "metadata without has_metadata");

  std::uint64_t total = 0;
  for (std::size_t i = 0; i < h.tensors.size(); ++i) {
    const TensorInfo& t = h.tensors[i];
    FUZZ_CHECK(h.find(t.name) == &t, "find() misses tensor " + quote_name(t.name));
    FUZZ_CHECK(h.position(t.name) == i, "position() misses tensor " + quote_name(t.name));
    FUZZ_CHECK(t.name.find('\0') == std::string::npos, "NUL in an accepted tensor name");
    FUZZ_CHECK(t.name != metadata_key, "a tensor named __metadata__");
    FUZZ_CHECK(is_valid_utf8(t.name), "accepted tensor name is not UTF-8: " + quote_name(t.name));
    FUZZ_CHECK(t.begin <= t.end && t.end <= data_size, "tensor range outside the data buffer");
    std::uint64_t elements = 1, bits = 0;
    for (std::uint64_t d : t.shape) FUZZ_CHECK(!__builtin_mul_overflow(elements, d, &elements), "element count overflows");
    FUZZ_CHECK(t.elements() == elements, "elements() is wrong");
    FUZZ_CHECK(!__builtin_mul_overflow(elements, std::uint64_t{dtype_bits(t.dtype)}, &bits), "bit count overflows");
    FUZZ_CHECK(bits % 8 == 0 && bits / 8 == t.nbytes(), "size does not match shape and dtype for " + quote_name(t.name));
    total += t.nbytes();
  }
  // A recording's data buffer may run past its last tensor (data appended since its last commit).
  const bool recording = h.find_metadata(recording_metadata_key) != nullptr;
  FUZZ_CHECK(recording ? total <= data_size : total == data_size, "tensors do not tile the data buffer exactly");
  std::vector<const TensorInfo*> order;
  for (const auto& t : h.tensors) order.push_back(&t);
  std::sort(order.begin(), order.end(), [](auto* a, auto* b) { return std::pair(a->begin, a->end) < std::pair(b->begin, b->end); });
  std::uint64_t expected = 0;
  for (const TensorInfo* t : order) {
    FUZZ_CHECK(t->begin == expected, "hole or overlap at " + quote_name(t->name));
    expected = t->end;
  }

  for (std::size_t i = 0; i < h.metadata.size(); ++i) {
    FUZZ_CHECK(h.find_metadata(h.metadata[i].first) == &h.metadata[i].second, "metadata key found twice or not at all");
  }
  for (const auto& [key, value] : user_metadata(h)) FUZZ_CHECK(!is_reserved_metadata_key(key), "user_metadata kept a reserved key");
}

void check_reader(const Reader& reader, std::span<const std::byte> file) {
  const Header& h = reader.header();
  volatile unsigned char sink = 0;
  for (const TensorInfo& t : h.tensors) {
    const TensorView view = reader.tensor(t);
    FUZZ_CHECK(view.info == &t, "view of another tensor");
    FUZZ_CHECK(view.bytes.size() == t.nbytes(), "view size differs from nbytes");
    FUZZ_CHECK(view.bytes.data() == file.data() + h.data_offset() + t.begin, "view does not start at the tensor's bytes");
    // Touch every byte: AddressSanitizer reports a view reaching outside the buffer.
    unsigned char x = 0;
    for (std::byte b : view.bytes) x ^= static_cast<unsigned char>(b);
    sink = sink ^ x;
    const TensorView by_name = reader.tensor(t.name);
    FUZZ_CHECK(by_name.info == &t && by_name.bytes.data() == view.bytes.data(), "tensor(name) differs from tensor(info)");
    bool refused = false;
    try {
      (void)reader.mutable_bytes(t);
    } catch (const Error& e) {
      refused = e.code() == ErrorCode::InvalidArgument;
    }
    FUZZ_CHECK(refused, "mutable_bytes() on a read-only reader");
  }
  bool not_found = false;
  try {
    (void)reader.tensor(std::string_view("\x01no such tensor\x02"));
  } catch (const Error& e) {
    not_found = e.code() == ErrorCode::TensorNotFound;
  }
  if (!h.find("\x01no such tensor\x02")) FUZZ_CHECK(not_found, "tensor() of a missing name did not raise TensorNotFound");
}

// Writes the tensors and metadata of an accepted file again and parses the result: the same file, up to layout.
void check_rewrite(const Reader& reader) {
  const Header& h = reader.header();
  std::vector<WriteTensor> tensors;
  for (const TensorInfo& t : h.tensors) tensors.push_back(WriteTensor{t.name, t.dtype, t.shape, reader.tensor(t).bytes.data(), {}});
  std::vector<std::byte> out;
  try {
    out = write_bytes(tensors, h.has_metadata ? &h.metadata : nullptr);
  } catch (const Error& e) {
    fuzz::fail(std::string("the writer refuses the contents of a file the reader accepted: ") + e.what());
  }
  Header again;
  try {
    again = parse_header(out);
  } catch (const Error& e) {
    fuzz::fail(std::string("the reader refuses what the writer wrote: ") + e.what());
  }
  FUZZ_CHECK(again.tensors.size() == h.tensors.size(), "tensor count changed on rewrite");
  FUZZ_CHECK(again.has_metadata == h.has_metadata, "has_metadata changed on rewrite");
  FUZZ_CHECK(sorted(again.metadata) == sorted(h.metadata), "metadata changed on rewrite");
  FUZZ_CHECK(again.header_size % 8 == 0, "writer did not pad the header to 8 bytes");
  for (const TensorInfo& t : h.tensors) {
    const TensorInfo* u = again.find(t.name);
    FUZZ_CHECK(u != nullptr, "tensor lost on rewrite: " + quote_name(t.name));
    FUZZ_CHECK(u->dtype == t.dtype && u->shape == t.shape && u->nbytes() == t.nbytes(), "tensor changed on rewrite: " + quote_name(t.name));
    const auto a = reader.tensor(t).bytes;
    FUZZ_CHECK(a.empty() || std::memcmp(a.data(), out.data() + again.data_offset() + u->begin, a.size()) == 0,
               "tensor bytes changed on rewrite: " + quote_name(t.name));
  }
  // The writer's output is canonical: writing it again gives the same bytes.
  std::vector<WriteTensor> tensors2;
  for (const TensorInfo& t : again.tensors) tensors2.push_back(WriteTensor{t.name, t.dtype, t.shape, out.data() + again.data_offset() + t.begin, {}});
  const std::vector<std::byte> out2 = write_bytes(tensors2, again.has_metadata ? &again.metadata : nullptr);
  FUZZ_CHECK(out2 == out, "writing a written file again changed its bytes");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  // An exact-size copy that the reader's owner keeps alive: AddressSanitizer sees any read past its end.
  std::shared_ptr<std::byte[]> owner(new std::byte[size]);
  if (size) std::memcpy(owner.get(), data, size);
  const std::span<const std::byte> file(owner.get(), size);

  Header header;
  const bool ok = fuzz::expect_ok_or_error("parse_header", [&] { header = parse_header(file); });
  if (ok) check_header(header, file);

  // A smaller header limit only adds HeaderTooLarge; it never changes what is accepted otherwise.
  if (ok && header.header_size > 0) {
    bool too_large = false;
    try {
      (void)parse_header(file, header.header_size - 1);
    } catch (const Error& e) {
      too_large = e.code() == ErrorCode::HeaderTooLarge;
    }
    FUZZ_CHECK(too_large, "a header over max_header_size was not refused with HeaderTooLarge");
  }

  std::optional<Reader> reader;
  const bool reader_ok = fuzz::expect_ok_or_error("Reader::from_buffer", [&] { reader.emplace(Reader::from_buffer(owner, file, false)); });
  FUZZ_CHECK(reader_ok == ok, "Reader::from_buffer and parse_header disagree");
  if (!reader_ok) return 0;
  check_header(reader->header(), file);
  check_reader(*reader, file);
  check_rewrite(*reader);
  // Checksums, when the file has an entry: a malformed one is refused with an error, never a crash.
  fuzz::expect_ok_or_error("verify_file", [&] { (void)verify_file(*reader); });
  return 0;
}
