// The one error type of the core, its codes, and the single function that raises it.
#pragma once

#include <stdexcept>
#include <string>
#include <string_view>

namespace safestructures {

// Every error code with what it means, in declaration order: ErrorCode and error_code_name are generated from
// this one list.
#define SAFESTRUCTURES_ERROR_CODES(X) \
  X(Io) /* An operating-system call failed; the message holds the call, the path and strerror(errno). */ \
  X(FileTooSmall) /* The file (or buffer) is shorter than the 8-byte header length prefix. */ \
  X(HeaderTooLarge) /* The header length prefix exceeds the header size limit (100,000,000 bytes by default). */ \
  X(HeaderPastEnd) /* The header length prefix points past the end of the file. */ \
  X(HeaderNotUtf8) /* The header bytes are not valid UTF-8. */ \
  X(HeaderNulByte) /* The header holds a NUL byte. */ \
  X(HeaderBom) /* The header starts with a UTF-8 byte order mark. */ \
  X(HeaderNotJson) /* The header is not well-formed JSON (numbers that do not fit in 64 bits included). */ \
  X(HeaderNotObject) /* The header's JSON value is not an object. */ \
  X(DuplicateKey) /* A key appears twice in the same JSON object (tensor names, metadata keys, entry fields, or any object of the schema). */ \
  X(MetadataNotObject) /* `__metadata__` is neither an object nor null. */ \
  X(MetadataNotString) /* A `__metadata__` value is not a string. */ \
  X(EntryNotObject) /* A tensor entry is not a JSON object. */ \
  X(MissingField) /* A tensor entry lacks `dtype`, `shape` or `data_offsets`. */ \
  X(WrongFieldType) /* A tensor entry field has the wrong JSON type (e.g. `shape` is not an array of numbers). */ \
  X(UnknownDtype) /* The dtype string is not one of the safetensors dtypes. */ \
  X(NegativeNumber) /* A shape dimension or offset is negative. */ \
  X(FractionalNumber) /* A shape dimension or offset is not an integer. */ \
  X(InvalidOffsets) /* `data_offsets` does not hold exactly two numbers, or BEGIN is greater than END. */ \
  X(ShapeOverflow) /* The byte size implied by the shape and dtype overflows 64 bits. */ \
  X(SubByteNotWhole) /* A sub-byte tensor's element count times its bit width is not a whole number of bytes. */ \
  X(SizeMismatch) /* END - BEGIN differs from the size implied by the shape and dtype. */ \
  X(Hole) /* Sorted by offset, the tensors leave a gap in the data buffer (or the first does not start at 0). */ \
  X(Overlap) /* Sorted by offset, two tensors' byte ranges overlap. */ \
  X(TrailingBytes) /* Bytes follow the last tensor's data. */ \
  X(DataPastEnd) /* A tensor's data runs past the end of the file. */ \
  X(InvalidName) /* A tensor name cannot be written (reserved `__metadata__`, or not valid UTF-8). */ \
  X(DuplicateName) /* Two tensors given to the writer share a name. */ \
  X(InvalidMetadata) /* A metadata key or value given to the writer is not valid UTF-8. */ \
  /* Arguments given to a core function contradict each other (e.g. a buffer smaller than the shape needs). */ \
  X(InvalidArgument) \
  X(TensorNotFound) /* A tensor name that the caller asked for (or that the schema refers to) is not in the file. */ \
  X(SchemaNotJson) /* The schema document is not valid JSON. */ \
  X(NestingTooDeep) /* The schema nests deeper than the nesting limit (on save: the data does). */ \
  X(TooManyNodes) /* The schema holds more nodes than the node limit. */ \
  /* The schema is JSON but not a valid safestructures schema (unknown tag, missing or wrong field, bad \
     reference). */ \
  X(SchemaInvalid) \
  X(SchemaVersion) /* The schema declares a format version this release cannot read. */ \
  X(TensorMismatch) /* A tensor's dtype or shape in the header contradicts what the schema says of it. */ \
  X(ChecksumMismatch) /* A tensor's bytes, or the header's content, do not match the checksum saved with them. */ \
  X(ChecksumsInvalid) /* The checksums entry is malformed: another algorithm, a bad digest, a tensor without one. */ \
  /* A load would do more work or allocate more than its limits allow: hashing shared structure, many keys with \
     one hash value, copies or materialised views beyond the load's byte budget. */ \
  X(LimitExceeded) \
  /* The path names something other than a regular file or a directory (a FIFO, a device, a socket), whose \
     reading could block or never end. */ \
  X(NotARegularFile) \
  /* C++ tree API: a node was read as a kind it is not (e.g. as_int() on a string, an index into a dict). */ \
  X(WrongKind) \
  X(KeyNotFound) /* C++ tree API: a dict (or a dataclass's fields) lacks the key asked for. */ \
  X(IndexOutOfRange) /* C++ tree API: an index past the end of a list, tuple or other sequence. */

#define SAFESTRUCTURES_ERROR_CODE_ENTRY(name) name,
enum class ErrorCode { SAFESTRUCTURES_ERROR_CODES(SAFESTRUCTURES_ERROR_CODE_ENTRY) };
#undef SAFESTRUCTURES_ERROR_CODE_ENTRY

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
