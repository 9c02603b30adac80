// Example: open a file saved by Python (or C++) and print its metadata and tree: kinds, values, tensor dtypes and shapes.
//   print_tree FILE
#include <safestructures/file.hpp>

#include <charconv>
#include <cstdio>
#include <iostream>
#include <string>

namespace ss = safestructures;

namespace {

// The shortest text that reads back to the same double ("0.001", "1e+300", "nan").
std::string number_text(double value) {
  char buffer[32];
  const auto end = std::to_chars(buffer, buffer + sizeof buffer, value).ptr;
  return std::string(buffer, end);
}

// The first elements of a float or integer tensor, for a glance at its data.
std::string first_values(const ss::Tensor& t) {
  std::string out;
  const auto show = [&](auto values) {
    for (std::size_t i = 0; i < values.size() && i < 6; ++i) out += (i ? " " : "") + number_text(static_cast<double>(values[i]));
    if (values.size() > 6) out += " ...";
  };
  switch (t.dtype()) {
    case ss::Dtype::F32: show(t.values<float>()); break;
    case ss::Dtype::F64: show(t.values<double>()); break;
    case ss::Dtype::I32: show(t.values<std::int32_t>()); break;
    case ss::Dtype::I64: show(t.values<std::int64_t>()); break;
    default: break;
  }
  return out;
}

std::string describe_tensor(const ss::Tensor& t) {
  std::string out = "tensor " + std::string(ss::dtype_name(t.dtype())) + " [";
  for (std::size_t d = 0; d < t.shape().size(); ++d) out += (d ? ", " : "") + std::to_string(t.shape()[d]);
  out += "] " + t.name();
  if (!t.numpy_dtype().empty()) out += " numpy " + std::string(t.numpy_dtype());
  const std::string values = first_values(t);
  if (!values.empty()) out += ": " + values;
  return out;
}

void print(const ss::TreeNode& node, const std::string& label, int indent) {
  std::cout << std::string(2 * indent, ' ') << label;
  if (node.via_ref()) {
    // A second reference to an object printed before (and a cycle would never end).
    std::cout << "ref #" << node.shared_id() << " (" << ss::kind_name(node.kind()) << ")\n";
    return;
  }
  switch (node.kind()) {
    case ss::Kind::Null: std::cout << "None\n"; return;
    case ss::Kind::Bool: std::cout << (node.as_bool() ? "True" : "False") << "\n"; return;
    case ss::Kind::Int: std::cout << "int " << node.as_int() << "\n"; return;
    case ss::Kind::BigInt: std::cout << "bigint " << node.big_int_hex() << "\n"; return;
    case ss::Kind::Float: std::cout << "float " << number_text(node.as_double()) << "\n"; return;
    case ss::Kind::String: std::cout << "str " << ss::quote_name(node.as_string()) << "\n"; return;
    case ss::Kind::Bytes:
    case ss::Kind::ByteArray: std::cout << ss::kind_name(node.kind()) << " of " << node.as_bytes().size() << " bytes\n"; return;
    case ss::Kind::Tensor: std::cout << describe_tensor(node.as_tensor()) << "\n"; return;
    default: break;
  }
  std::cout << ss::kind_name(node.kind());
  if (node.shared_id()) std::cout << " #" << node.shared_id();
  if (node.is_sequence()) {
    std::cout << " of " << node.size() << "\n";
    std::size_t index = 0;
    for (const ss::TreeNode& item : node.items()) print(item, "[" + std::to_string(index++) + "] ", indent + 1);
  } else if (node.is_mapping()) {
    std::cout << " of " << node.size() << "\n";
    for (const ss::Entry& entry : node.entries()) {
      // String keys are printed as such; other keys (ints, tuples...) as the nodes they are.
      if (entry.key.kind() == ss::Kind::String) {
        print(entry.value, ss::quote_name(entry.key.as_string()) + ": ", indent + 1);
      } else {
        print(entry.key, "key: ", indent + 1);
        print(entry.value, "value: ", indent + 2);
      }
    }
  } else {
    // Any other tagged node (dataclass, enum, datetime...): its class name, if any, and its fields.
    if (!node.type_name().empty()) std::cout << " " << node.type_name();
    std::cout << "\n";
    for (const ss::Entry& field : node.fields()) {
      if (field.key.as_string() != "type") print(field.value, field.key.as_string() + ": ", indent + 1);
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: print_tree FILE\n";
    return 2;
  }
  try {
    const ss::File file = ss::File::open(argv[1]);
    for (const auto& [key, value] : file.metadata()) std::cout << "metadata " << key << " = " << value << "\n";
    print(file.root(), "", 0);
  } catch (const ss::Error& e) {
    std::cerr << "error (" << ss::error_code_name(e.code()) << "): " << e.what() << "\n";
    return 1;
  }
  return 0;
}
