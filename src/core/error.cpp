// The names of the error codes and the single raise function.
#include "safestructures/error.hpp"

#include <cstring>

namespace safestructures {

std::string_view error_code_name(ErrorCode code) {
  switch (code) {
    case ErrorCode::Io: return "Io";
    case ErrorCode::FileTooSmall: return "FileTooSmall";
    case ErrorCode::HeaderTooLarge: return "HeaderTooLarge";
    case ErrorCode::HeaderPastEnd: return "HeaderPastEnd";
    case ErrorCode::HeaderNotUtf8: return "HeaderNotUtf8";
    case ErrorCode::HeaderNulByte: return "HeaderNulByte";
    case ErrorCode::HeaderBom: return "HeaderBom";
    case ErrorCode::HeaderNotJson: return "HeaderNotJson";
    case ErrorCode::HeaderNotObject: return "HeaderNotObject";
    case ErrorCode::DuplicateKey: return "DuplicateKey";
    case ErrorCode::MetadataNotObject: return "MetadataNotObject";
    case ErrorCode::MetadataNotString: return "MetadataNotString";
    case ErrorCode::EntryNotObject: return "EntryNotObject";
    case ErrorCode::MissingField: return "MissingField";
    case ErrorCode::WrongFieldType: return "WrongFieldType";
    case ErrorCode::UnknownDtype: return "UnknownDtype";
    case ErrorCode::NegativeNumber: return "NegativeNumber";
    case ErrorCode::FractionalNumber: return "FractionalNumber";
    case ErrorCode::InvalidOffsets: return "InvalidOffsets";
    case ErrorCode::ShapeOverflow: return "ShapeOverflow";
    case ErrorCode::SubByteNotWhole: return "SubByteNotWhole";
    case ErrorCode::SizeMismatch: return "SizeMismatch";
    case ErrorCode::Hole: return "Hole";
    case ErrorCode::Overlap: return "Overlap";
    case ErrorCode::TrailingBytes: return "TrailingBytes";
    case ErrorCode::DataPastEnd: return "DataPastEnd";
    case ErrorCode::InvalidName: return "InvalidName";
    case ErrorCode::DuplicateName: return "DuplicateName";
    case ErrorCode::InvalidMetadata: return "InvalidMetadata";
    case ErrorCode::InvalidArgument: return "InvalidArgument";
    case ErrorCode::TensorNotFound: return "TensorNotFound";
    case ErrorCode::SchemaNotJson: return "SchemaNotJson";
    case ErrorCode::NestingTooDeep: return "NestingTooDeep";
    case ErrorCode::TooManyNodes: return "TooManyNodes";
    case ErrorCode::SchemaInvalid: return "SchemaInvalid";
    case ErrorCode::SchemaVersion: return "SchemaVersion";
    case ErrorCode::TensorMismatch: return "TensorMismatch";
    case ErrorCode::LimitExceeded: return "LimitExceeded";
    case ErrorCode::NotARegularFile: return "NotARegularFile";
    case ErrorCode::WrongKind: return "WrongKind";
    case ErrorCode::KeyNotFound: return "KeyNotFound";
    case ErrorCode::IndexOutOfRange: return "IndexOutOfRange";
  }
  return "Unknown";
}

void raise(ErrorCode code, std::string message, int sys_errno, std::string path) {
  throw Error(code, std::move(message), sys_errno, std::move(path));
}

void raise_io(std::string_view operation, std::string_view path, int sys_errno) {
  std::string message;
  message.append(operation).append(" '").append(path).append("': ").append(std::strerror(sys_errno));
  raise(ErrorCode::Io, std::move(message), sys_errno, std::string(path));
}

}  // namespace safestructures
