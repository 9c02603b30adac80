// The one error type of the core, its codes, and the single function that raises it.
#pragma once

#include <stdexcept>
#include <string>
#include <string_view>

namespace safestructures {

enum class ErrorCode {
  // An operating-system call failed; the message holds the call, the path and strerror(errno).
  Io,
  // The file (or buffer) is shorter than the 8-byte header length prefix.
  FileTooSmall,
  // The header length prefix exceeds the header size limit (100,000,000 bytes by default).
  HeaderTooLarge,
  // The header length prefix points past the end of the file.
  HeaderPastEnd,
  // The header bytes are not valid UTF-8.
  HeaderNotUtf8,
  // The header holds a NUL byte.
  HeaderNulByte,
  // The header starts with a UTF-8 byte order mark.
  HeaderBom,
  // The header is not well-formed JSON (numbers that do not fit in 64 bits included).
  HeaderNotJson,
  // The header's JSON value is not an object.
  HeaderNotObject,
  // A key appears twice in the same JSON object (tensor names, metadata keys or entry fields).
  DuplicateKey,
  // `__metadata__` is neither an object nor null.
  MetadataNotObject,
  // A `__metadata__` value is not a string.
  MetadataNotString,
  // A tensor entry is not a JSON object.
  EntryNotObject,
  // A tensor entry lacks `dtype`, `shape` or `data_offsets`.
  MissingField,
  // A tensor entry field has the wrong JSON type (e.g. `shape` is not an array of numbers).
  WrongFieldType,
  // The dtype string is not one of the safetensors dtypes.
  UnknownDtype,
  // A shape dimension or offset is negative.
  NegativeNumber,
  // A shape dimension or offset is not an integer.
  FractionalNumber,
  // `data_offsets` does not hold exactly two numbers, or BEGIN is greater than END.
  InvalidOffsets,
  // The byte size implied by the shape and dtype overflows 64 bits.
  ShapeOverflow,
  // A sub-byte tensor's element count times its bit width is not a whole number of bytes.
  SubByteNotWhole,
  // END - BEGIN differs from the size implied by the shape and dtype.
  SizeMismatch,
  // Sorted by offset, the tensors leave a gap in the data buffer (or the first does not start at 0).
  Hole,
  // Sorted by offset, two tensors' byte ranges overlap.
  Overlap,
  // Bytes follow the last tensor's data.
  TrailingBytes,
  // A tensor's data runs past the end of the file.
  DataPastEnd,
  // A tensor name cannot be written (reserved `__metadata__`, or not valid UTF-8).
  InvalidName,
  // Two tensors given to the writer share a name.
  DuplicateName,
  // A metadata key or value given to the writer is not valid UTF-8.
  InvalidMetadata,
  // Arguments given to a core function contradict each other (e.g. a buffer smaller than the shape needs).
  InvalidArgument,
  // A tensor name that the caller asked for (or that the schema refers to) is not in the file.
  TensorNotFound,
  // The schema document is not valid JSON.
  SchemaNotJson,
  // The schema nests deeper than the nesting limit (on save: the data does).
  NestingTooDeep,
  // The schema holds more nodes than the node limit.
  TooManyNodes,
  // The schema is JSON but not a valid safestructures schema (unknown tag, missing or wrong field, bad reference).
  SchemaInvalid,
  // The schema declares a format version this release cannot read.
  SchemaVersion,
  // A tensor's dtype or shape in the header contradicts what the schema says of it.
  TensorMismatch,
  // A load would do more work or allocate more than its limits allow: hashing shared structure, many keys with one
  // hash value, copies or materialised views beyond the load's byte budget.
  LimitExceeded,
  // The path names something other than a regular file or a directory (a FIFO, a device, a socket), whose reading
  // could block or never end.
  NotARegularFile,
  // C++ tree API: a node was read as a kind it is not (e.g. as_int() on a string, an index into a dict).
  WrongKind,
  // C++ tree API: a dict (or a dataclass's fields) lacks the key asked for.
  KeyNotFound,
  // C++ tree API: an index past the end of a list, tuple or other sequence.
  IndexOutOfRange,
};

// The identifier of a code, e.g. "SizeMismatch", stable for programs that match on it.
std::string_view error_code_name(ErrorCode code);

class Error : public std::runtime_error {
 public:
  Error(ErrorCode code, std::string message, int sys_errno = 0, std::string path = {})
      : std::runtime_error(std::move(message)), code_(code), sys_errno_(sys_errno), path_(std::move(path)) {}
  ErrorCode code() const noexcept { return code_; }
  // errno of the failed call for ErrorCode::Io, 0 otherwise.
  int sys_errno() const noexcept { return sys_errno_; }
  // The file an I/O error concerns, empty otherwise.
  const std::string& path() const noexcept { return path_; }

 private:
  ErrorCode code_;
  int sys_errno_;
  std::string path_;
};

[[noreturn]] void raise(ErrorCode code, std::string message, int sys_errno = 0, std::string path = {});

// Builds the message of an I/O error, "<operation> '<path>': <strerror>", and raises it with the errno.
[[noreturn]] void raise_io(std::string_view operation, std::string_view path, int sys_errno);

}  // namespace safestructures
