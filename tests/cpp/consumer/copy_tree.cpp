// Test program: reads a file with the C++ reading API and saves its tree again with the building API, so that a
// Python test can check that both sides agree, down to the bytes of the file.
//   copy_tree IN OUT
#include <safestructures/file.hpp>
#include <safestructures/value.hpp>

#include <iostream>
#include <unordered_map>

namespace ss = safestructures;

namespace {

class Copier {
 public:
  ss::Value copy(const ss::TreeNode& node) {
    // A shared object is copied once; every other place refers to that copy, so the saver writes refs again.
    if (node.shared_id()) {
      if (const auto it = shared_.find(node.shared_id()); it != shared_.end()) return it->second;
    }
    switch (node.kind()) {
      case ss::Kind::Null: return {};
      case ss::Kind::Bool: return node.as_bool();
      case ss::Kind::Int: return node.as_int();
      case ss::Kind::BigInt: return ss::Value::big_int(node.big_int_hex());
      case ss::Kind::Float: return node.as_double();
      case ss::Kind::String: return node.as_string();
      case ss::Kind::Bytes: return remember(node, ss::Value::bytes(node.as_bytes()));
      case ss::Kind::Tensor: {
        const ss::Tensor t = node.as_tensor();
        // A view of the mapping, which main's `file` keeps until the save is done.
        return remember(node, ss::Value::tensor(t.dtype(), t.shape(), t.bytes()));
      }
      case ss::Kind::List:
      case ss::Kind::Tuple: {
        // Registered before its items: a list may hold itself.
        ss::Value out = remember(node, node.kind() == ss::Kind::List ? ss::Value::list() : ss::Value::tuple());
        for (const ss::TreeNode& item : node.items()) out.append(copy(item));
        return out;
      }
      case ss::Kind::Dict: {
        ss::Value out = remember(node, ss::Value::dict());
        for (const ss::Entry& entry : node.entries()) out.set(copy(entry.key), copy(entry.value));
        return out;
      }
      default:
        throw ss::Error(ss::ErrorCode::InvalidArgument, "at " + node.path() + ": copy_tree cannot build a " + std::string(ss::kind_name(node.kind())));
    }
  }

  // Cycles among the copies are broken, so that they are freed.
  ~Copier() {
    for (auto& [id, value] : shared_) {
      if (value.kind() == ss::Kind::List || value.kind() == ss::Kind::Tuple || value.kind() == ss::Kind::Dict) value.clear();
    }
  }

 private:
  ss::Value remember(const ss::TreeNode& node, ss::Value value) {
    if (node.shared_id()) shared_.emplace(node.shared_id(), value);
    return value;
  }

  std::unordered_map<std::int64_t, ss::Value> shared_;
};

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::cerr << "usage: copy_tree IN OUT\n";
    return 2;
  }
  try {
    const ss::File file = ss::File::open(argv[1]);
    Copier copier;
    ss::save_file(argv[2], copier.copy(file.root()), file.metadata());
  } catch (const ss::Error& e) {
    std::cerr << "error (" << ss::error_code_name(e.code()) << "): " << e.what() << "\n";
    return 1;
  }
  return 0;
}
