// Helpers shared by the core tests: raw files built from JSON text, error matching, byte buffers, readers over them
// and temporary files.
#pragma once

#include <gtest/gtest.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <iterator>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "safestructures/container.hpp"
#include "safestructures/dtype.hpp"
#include "safestructures/error.hpp"
#include "safestructures/reader.hpp"
#include "safestructures/writer.hpp"

namespace safestructures::test {

using Bytes = std::vector<std::byte>;

inline Bytes to_bytes(std::string_view text) {
  Bytes out(text.size());
  if (!text.empty()) std::memcpy(out.data(), text.data(), text.size());
  return out;
}

inline std::string to_text(std::span<const std::byte> bytes) {
  return std::string(reinterpret_cast<const char*>(bytes.data()), bytes.size());
}

// The 8-byte little-endian header length prefix.
inline std::string le64(std::uint64_t n) {
  std::string out(8, '\0');
  for (int b = 0; b < 8; ++b) out[b] = static_cast<char>((n >> (8 * b)) & 0xff);
  return out;
}

// `count` bytes 0, 1, 2, ... (mod 256), so that a misplaced byte shows up in a comparison.
inline Bytes iota_bytes(std::size_t count, unsigned start = 0) {
  Bytes out(count);
  for (std::size_t i = 0; i < count; ++i) out[i] = static_cast<std::byte>((start + i) & 0xff);
  return out;
}

// A header as the writer lays it out: the 8-byte prefix, `json`, then spaces up to a multiple of 8.
inline std::string header_bytes(std::string_view json) {
  const std::string padding((8 - json.size() % 8) % 8, ' ');
  return le64(json.size() + padding.size()) + std::string(json) + padding;
}

// A raw file: a prefix holding `declared_size`, then `json` verbatim, then `data`. Lets a test lie about N.
inline Bytes raw_file(std::uint64_t declared_size, std::string_view json, std::span<const std::byte> data = {}) {
  Bytes out = to_bytes(le64(declared_size));
  out.insert(out.end(), reinterpret_cast<const std::byte*>(json.data()), reinterpret_cast<const std::byte*>(json.data()) + json.size());
  out.insert(out.end(), data.begin(), data.end());
  return out;
}

// A file whose prefix tells the true length of `json` (no padding added), followed by `data`.
inline Bytes make_file(std::string_view json, std::span<const std::byte> data = {}) { return raw_file(json.size(), json, data); }

// Same, with `data_size` bytes of iota data.
inline Bytes make_file(std::string_view json, std::size_t data_size) {
  const Bytes data = iota_bytes(data_size);
  return make_file(json, data);
}

inline Header parse(std::string_view json, std::size_t data_size = 0) { return parse_header(make_file(json, data_size)); }

// One header entry as JSON text: `"name":{"dtype":..,"shape":[..],"data_offsets":[b,e]}`; `shape` is raw JSON.
inline std::string entry(std::string_view name, std::string_view dtype, std::string_view shape, std::uint64_t begin, std::uint64_t end) {
  std::string out;
  append_json_string(out, name);
  out += ":{\"dtype\":\"" + std::string(dtype) + "\",\"shape\":" + std::string(shape) + ",\"data_offsets\":[" + std::to_string(begin) + "," +
         std::to_string(end) + "]}";
  return out;
}

// Runs `f` and checks that it raises Error with `code` and a message holding every string of `mentions` (the
// offending tensor or key, quoted as the core quotes it).
template <class F>
::testing::AssertionResult fails_with(F&& f, ErrorCode code, std::initializer_list<std::string_view> mentions = {}) {
  try {
    f();
  } catch (const Error& e) {
    if (e.code() != code) {
      return ::testing::AssertionFailure() << "raised " << error_code_name(e.code()) << " instead of " << error_code_name(code)
                                           << ": " << e.what();
    }
    const std::string_view message = e.what();
    for (std::string_view m : mentions) {
      if (message.find(m) == std::string_view::npos) {
        return ::testing::AssertionFailure() << "message of " << error_code_name(code) << " lacks [" << m << "]: " << message;
      }
    }
    return ::testing::AssertionSuccess();
  } catch (const std::exception& e) {
    return ::testing::AssertionFailure() << "raised a non-Error exception: " << e.what();
  }
  return ::testing::AssertionFailure() << "did not raise " << error_code_name(code);
}

// The Error that `f` raises; fails the test (and returns a default Error) when it raises none.
template <class F>
Error error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e;
  }
  ADD_FAILURE() << "no Error raised";
  return Error(ErrorCode::InvalidArgument, "none");
}

// A read-only Reader over a copy of `file`; the reader (and any view taken from it) owns the copy.
inline Reader reader_of(Bytes file, std::uint64_t max_header_size = default_max_header_size) {
  auto owner = std::make_shared<const Bytes>(std::move(file));
  return Reader::from_buffer(owner, *owner, /*writable=*/false, max_header_size);
}

// A WriteTensor over bytes that the caller keeps alive.
inline WriteTensor tensor_of(std::string name, Dtype dtype, std::vector<std::uint64_t> shape, std::span<const std::byte> data,
                             std::vector<std::int64_t> strides = {}) {
  return WriteTensor{std::move(name), dtype, std::move(shape), data.empty() ? nullptr : data.data(), std::move(strides)};
}

template <class T>
std::span<const std::byte> bytes_of(const std::vector<T>& v) {
  return std::as_bytes(std::span<const T>(v));
}

// The bytes of tensor `name` inside a whole file, located through its parsed header.
inline Bytes tensor_bytes(std::span<const std::byte> file, const Header& header, std::string_view name) {
  const TensorInfo* info = header.find(name);
  if (info == nullptr) {
    ADD_FAILURE() << "no tensor " << name;
    return {};
  }
  const auto part = file.subspan(header.data_offset() + info->begin, info->nbytes());
  return Bytes(part.begin(), part.end());
}

// A fresh, empty directory for the running test under SAFESTRUCTURES_TEST_TMP (ctest may run tests in parallel).
inline std::filesystem::path test_dir() {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  std::string leaf = std::string(info->test_suite_name()) + "." + info->name();
  for (char& c : leaf) {
    if (c == '/') c = '_';
  }
  const std::filesystem::path dir = std::filesystem::path(SAFESTRUCTURES_TEST_TMP) / leaf;
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

inline Bytes read_file_bytes(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return to_bytes(text);
}

inline void write_file_bytes(const std::filesystem::path& path, std::span<const std::byte> bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

// Names in `dir` that look like the writer's temporary files (".<name>.<stamp>.tmp").
inline std::vector<std::string> temporary_files_in(const std::filesystem::path& dir) {
  std::vector<std::string> out;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    if (name.starts_with('.') && name.ends_with(".tmp")) out.push_back(name);
  }
  return out;
}

}  // namespace safestructures::test
