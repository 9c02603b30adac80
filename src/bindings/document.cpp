// safestructures._core.Document: a file (or the shards of one save) opened lazily, its schema walkable node by node.
#include <nanobind/nanobind.h>
#include <nanobind/stl/filesystem.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/string_view.h>
#include <nanobind/stl/vector.h>

#include <cstdint>
#include <optional>

#include "bindings.hpp"
#include "safestructures/structure.hpp"

namespace safestructures::bindings {
namespace {

using namespace nb::literals;

// Python walks the tree through node indices: this object keeps the tape, the mappings and the lookup tables they
// index into, so a walk costs one small call per node visited and nothing for the nodes it skips.
class Document {
 public:
  Document(const std::vector<std::filesystem::path>& paths, const std::optional<std::string>& schema, std::uint32_t max_depth,
           std::uint64_t max_nodes, std::uint64_t max_header_size)
      : options_{max_depth, max_nodes, nb::handle()} {
    if (paths.empty()) throw ArgumentError(ErrorCode::InvalidArgument, "a document needs at least one file");
    for (const auto& path : paths) {
      // Read where asked, not ahead: load() prefetches what a part needs.
      auto [reader, buffer] = open_mapped(path, max_header_size, Access::Parts);
      source_.shards.push_back(Shard{std::move(reader), buffer});
    }
    const std::string where = paths.size() == 1 ? paths.front().string() : paths.front().parent_path().string();
    try {
      source_.check_unique_names();
      if (schema) {
        tape_ = parse_schema_json(*schema, schema_limits(options_));
      } else if (paths.size() == 1) {
        tape_ = read_schema(source_.shards.front().reader, schema_limits(options_));
      }
      if (tape_) root_ = schema_root(*tape_);
    } catch (const Error& e) {
      if (e.code() == ErrorCode::Io) throw;
      raise(e.code(), where + ": " + e.what());
    }
  }

  // Gives a file with no schema (a plain safetensors file) the schema the caller made for it.
  void adopt_schema(const std::string& schema) {
    if (tape_) throw ArgumentError(ErrorCode::InvalidArgument, "the document already has a schema");
    tape_ = parse_schema_json(schema, schema_limits(options_));
    root_ = schema_root(*tape_);
  }

  bool structured() const { return tape_.has_value(); }
  std::size_t root() const { return root_; }
  std::size_t shard_count() const { return source_.shards.size(); }
  std::size_t node_count() const { return tape_ ? tape_->size() : 0; }

  nb::object buffer(std::size_t shard) const { return source_.shards.at(shard).buffer; }
  nb::object metadata(std::size_t shard) const {
    const Header& header = source_.shards.at(shard).reader.header();
    return tape_ ? metadata_to_python(header, user_metadata(header)) : metadata_to_python(header);
  }
  nb::list tensors(std::size_t shard) const { return tensor_table(source_.shards.at(shard).reader.header()); }

  // (kind, tag or None, element/member count, index one past the subtree).
  nb::tuple node(std::size_t i) const {
    const Node& n = at(i);
    static const char* const kinds[] = {"null", "false", "true", "int", "float", "string", "array", "object"};
    nb::object tag = nb::none();
    if (n.kind == NodeKind::Object) {
      const std::string_view t = tape_->tag(i);
      if (!t.empty()) tag = nb::str(t.data(), t.size());
    }
    return nb::make_tuple(kinds[static_cast<int>(n.kind)], tag, n.count, n.end);
  }

  nb::list members(std::size_t i) const {
    const Node& n = at(i);
    if (n.kind != NodeKind::Object) throw ArgumentError(ErrorCode::InvalidArgument, "node " + std::to_string(i) + " is not an object");
    nb::list out;
    std::size_t c = i + 1;
    for (std::uint32_t k = 0; k < n.count; ++k) {
      const std::string_view key = (*tape_)[c].text;
      out.append(nb::make_tuple(nb::str(key.data(), key.size()), c + 1));
      c = tape_->next(c + 1);
    }
    return out;
  }

  nb::list elements(std::size_t i) const {
    const Node& n = at(i);
    if (n.kind != NodeKind::Array) throw ArgumentError(ErrorCode::InvalidArgument, "node " + std::to_string(i) + " is not an array");
    nb::list out;
    std::size_t c = i + 1;
    for (std::uint32_t k = 0; k < n.count; ++k) {
      out.append(c);
      c = tape_->next(c);
    }
    return out;
  }

  // A JSON scalar as itself (strings decoded); containers are walked with members/elements or built with load.
  nb::object value(std::size_t i) const {
    const Node& n = at(i);
    switch (n.kind) {
      case NodeKind::Null: return nb::none();
      case NodeKind::False: return nb::bool_(false);
      case NodeKind::True: return nb::bool_(true);
      case NodeKind::Int: return nb::int_(n.integer);
      case NodeKind::Float: return nb::float_(n.number);
      case NodeKind::String: return nb::str(n.text.data(), n.text.size());
      default: throw ArgumentError(ErrorCode::InvalidArgument, "node " + std::to_string(i) + " is a container");
    }
  }

  // The node that defines reference id `id`, or None.
  nb::object definition(std::int64_t id) {
    const TreeIndex& idx = tree_index();
    if (id < 1 || static_cast<std::uint64_t>(id) >= idx.id_nodes.size() || idx.id_nodes[static_cast<std::size_t>(id)] == Tape::npos) return nb::none();
    return nb::int_(idx.id_nodes[static_cast<std::size_t>(id)]);
  }

  // (dtype, shape, nbytes, shard, offset from the start of its file) of tensor `name`, or None.
  nb::object tensor(std::string_view name) const {
    const TensorSource::Found found = source_.find(name);
    if (found.info == nullptr) return nb::none();
    const TensorInfo& t = *found.info;
    nb::list shape;
    for (std::uint64_t d : t.shape) shape.append(d);
    const auto dtype = dtype_name(t.dtype);
    return nb::make_tuple(nb::str(dtype.data(), dtype.size()), nb::tuple(shape), t.nbytes(),
                          static_cast<std::size_t>(found.shard - source_.shards.data()), found.shard->reader.header().data_offset() + t.begin);
  }

  // Builds the object at node `i`; anything it refers to outside itself is built too, and nothing else is read.
  nb::object load(std::size_t i, nb::handle context) {
    at(i);
    LoadOptions options = options_;
    options.context = context;
    if (i == root_) {
      // The whole data: read as load_file reads, with the kernel's readahead.
      for (const Shard& shard : source_.shards) mapping(shard).set_access(Access::Whole);
    } else {
      prefetch(i);
    }
    return build_node(*tape_, i, source_, options, i == root_ ? nullptr : &tree_index());
  }

  // Builds the objects at several nodes (a walk's leaves or keys) in one pass: what they share is built once.
  nb::list load_many(const std::vector<std::size_t>& nodes, nb::handle context, bool keys) {
    for (const std::size_t i : nodes) {
      at(i);
      prefetch(i);
    }
    LoadOptions options = options_;
    options.context = context;
    return build_nodes(*tape_, nodes, source_, options, tree_index(), keys, failed_at_);
  }

  // After load_many raised: the position in its list of the node that raised it.
  std::size_t failed_at() const { return failed_at_; }

 private:
  const Node& at(std::size_t i) const {
    if (!tape_) throw ArgumentError(ErrorCode::InvalidArgument, "the file holds no structure (no schema)");
    if (i >= tape_->size()) throw ArgumentError(ErrorCode::InvalidArgument, "node " + std::to_string(i) + " is out of range");
    return (*tape_)[i];
  }
  // Starts reading, in the background, the bytes of every tensor the subtree at `i` names (a view's storage too).
  void prefetch(std::size_t i) const {
    const Tape& tape = *tape_;
    for (std::size_t n = i; n < tape[i].end; ++n) {
      if (tape[n].kind != NodeKind::Object) continue;
      const std::string_view tag = tape.tag(n);
      const char* field = tag == "tensor" ? "name" : (tag == "bytes" || tag == "bytearray") ? "tensor" : nullptr;
      if (field == nullptr) continue;
      for (const char* key : {field, "storage"}) {
        const std::size_t at = tape.member(n, key);
        if (at == Tape::npos || tape[at].kind != NodeKind::String) continue;
        const TensorSource::Found found = source_.find(tape[at].text);
        if (found.info == nullptr) continue;  // the load reports it
        const std::uint64_t begin = found.shard->reader.header().data_offset() + found.info->begin;
        mapping(*found.shard).prefetch(begin, begin + found.info->nbytes());
      }
    }
  }

  static const MappedFile& mapping(const Shard& shard) { return *std::static_pointer_cast<const MappedFile>(shard.reader.owner()); }

  const TreeIndex& tree_index() {
    if (!tape_) throw ArgumentError(ErrorCode::InvalidArgument, "the file holds no structure (no schema)");
    if (!index_) index_.emplace(*tape_);
    return *index_;
  }

  LoadOptions options_;
  TensorSource source_;
  std::optional<Tape> tape_;
  std::size_t root_ = 0;
  std::optional<TreeIndex> index_;
  std::size_t failed_at_ = 0;
};

}  // namespace

void register_document(nb::module_& m) {
  nb::class_<Document>(m, "Document",
                       "A file opened lazily: its header and schema parsed, its tensors mapped but not read. Nodes are "
                       "addressed by their index in the schema's pre-order tape.")
      .def(nb::init<const std::vector<std::filesystem::path>&, const std::optional<std::string>&, std::uint32_t, std::uint64_t, std::uint64_t>(),
           "paths"_a, "schema"_a.none(), "max_depth"_a, "max_nodes"_a, "max_header_size"_a,
           "Map `paths` (one file, or the shards of a sharded save with `schema`, the schema document that names their "
           "tensors) and parse the schema.")
      .def("adopt_schema", &Document::adopt_schema, "schema"_a, "Use `schema` for a file that has none.")
      .def_prop_ro("structured", &Document::structured, "Whether the file has a safestructures schema.")
      .def_prop_ro("root", &Document::root, "The root node.")
      .def_prop_ro("shard_count", &Document::shard_count, "The number of files mapped.")
      .def_prop_ro("node_count", &Document::node_count, "The number of schema nodes.")
      .def("buffer", &Document::buffer, "shard"_a = 0, "The FileBuffer of a mapped file.")
      .def("metadata", &Document::metadata, "shard"_a = 0, "A file's metadata without the reserved keys (None when it has none).")
      .def("tensors", &Document::tensors, "shard"_a = 0, "A file's tensors: [(name, dtype, shape, offset, nbytes)].")
      .def("node", &Document::node, "index"_a, "(kind, tag or None, count, end) of a node.")
      .def("members", &Document::members, "index"_a, "[(key, value node)] of an object node.")
      .def("elements", &Document::elements, "index"_a, "The element nodes of an array node.")
      .def("value", &Document::value, "index"_a, "The value of a scalar node.")
      .def("definition", &Document::definition, "id"_a, "The node defining reference id `id`, or None.")
      .def("tensor", &Document::tensor, "name"_a, "(dtype, shape, nbytes, shard, offset) of a tensor, or None.")
      .def("load", &Document::load, "index"_a, "context"_a.none(), "Build the Python object at a node.")
      .def("load_many", &Document::load_many, "indices"_a, "context"_a.none(), "keys"_a = false,
           "Build the Python objects at several nodes in one pass (what they share is built once); with `keys`, the "
           "keys of one mapping, hashed within the load's limits.")
      .def_prop_ro("failed_at", &Document::failed_at, "After load_many raised: the position of the node that raised it.");
}

}  // namespace safestructures::bindings
