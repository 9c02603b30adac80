// safestructures._core.LazyFile: a file (or the shards of one save) opened lazily, its tree read node by node through
// the core's TreeReader (kinds, references followed, the children of every container), parts built on demand.
#include <nanobind/nanobind.h>
#include <nanobind/stl/filesystem.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/string_view.h>
#include <nanobind/stl/vector.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <optional>
#include <unordered_map>
#include <unordered_set>

#include "bindings.hpp"
#include "safestructures/seeded_hash.hpp"
#include "safestructures/structure.hpp"

namespace safestructures::bindings {
namespace {

using namespace nb::literals;
using Kind = safestructures::Kind;

// Where a tensor's bytes lie in its shard's file: [begin, end).
std::pair<std::uint64_t, std::uint64_t> file_range(const TensorSource::Found& found) {
  const std::uint64_t begin = found.shard->reader.header().data_offset() + found.info->begin;
  return {begin, begin + found.info->nbytes()};
}

// A tensor's bytes as the source's fetch takes them: (shard, begin, end).
nb::tuple fetch_range(const TensorSource& source, const TensorSource::Found& found) {
  const auto [begin, end] = file_range(found);
  return nb::make_tuple(found.shard - source.shards.data(), begin, end);
}

bool fetches(const TensorSource& source) { return source.fetch.is_valid() && !source.fetch.is_none(); }

// Python walks the tree through node indices: this object keeps the tree, the mappings and the lookup tables they
// index into, so a walk costs one small call per node visited and nothing for the nodes it skips.
class LazyFile {
 public:
  LazyFile(const std::vector<std::filesystem::path>& paths, const std::optional<std::string>& schema, std::uint32_t max_depth,
           std::uint64_t max_nodes, std::uint64_t max_header_size)
      : LazyFile(max_depth, max_nodes) {
    if (paths.empty()) throw ArgumentError(ErrorCode::InvalidArgument, "a document needs at least one file");
    // Read where asked, not ahead: load() prefetches what a part needs.
    for (const auto& path : paths) source_.shards.push_back(open_mapped(path, max_header_size, Access::Parts));
    read_tree(paths.size() == 1 ? paths.front().string() : paths.front().parent_path().string(), schema);
  }

  // Over buffers of the files' sizes (a stream read whole, or a remote file's bytes fetched into them): the headers
  // must be in place; with `fetch`, the rest is filled on demand (see TensorSource::fetch).
  static LazyFile* from_buffers(const std::vector<nb::object>& buffers, nb::object fetch, const std::string& name,
                                const std::optional<std::string>& schema, std::uint32_t max_depth, std::uint64_t max_nodes,
                                std::uint64_t max_header_size) {
    if (buffers.empty()) throw ArgumentError(ErrorCode::InvalidArgument, "a document needs at least one file");
    auto file = std::make_unique<LazyFile>(max_depth, max_nodes);
    for (const nb::object& buffer : buffers) {
      Py_buffer view;
      if (PyObject_GetBuffer(buffer.ptr(), &view, PyBUF_SIMPLE) != 0) throw nb::python_error();
      // The object keeps the bytes (the Shard holds it): the view is only needed to find them.
      const std::span<const std::byte> bytes(static_cast<const std::byte*>(view.buf), static_cast<std::size_t>(view.len));
      const bool writable = !view.readonly;
      PyBuffer_Release(&view);
      naming_file(name, [&] {
        file->source_.shards.push_back(Shard{Reader::from_buffer(nullptr, bytes, writable, max_header_size), buffer, {}});
      });
    }
    file->source_.fetch = std::move(fetch);
    file->mapped_ = false;
    file->read_tree(name, schema);
    return file.release();
  }
  LazyFile(std::uint32_t max_depth, std::uint64_t max_nodes) : options_{max_depth, max_nodes, nb::handle()} {}

  // Reads files with no schema (a plain safetensors file, or the plain shards of a checkpoint) as the tree the format
  // makes up for one, its tensors from `framework`; `structured` stays false. `names` gives the tensors of a
  // checkpoint of shards in its index's order; a file's are in header order.
  void read_as_plain(const std::string& framework, const std::optional<std::vector<std::string>>& names) {
    if (tree_) throw ArgumentError(ErrorCode::InvalidArgument, "the file already has a schema");
    plain_framework_ = framework;
    if (names) {
      std::vector<const TensorInfo*> tensors;
      tensors.reserve(names->size());
      for (const std::string& name : *names) {
        const TensorSource::Found found = source_.find(name);
        if (found.info == nullptr) throw ArgumentError(ErrorCode::TensorNotFound, "no shard holds tensor " + quote_name(name));
        tensors.push_back(found.info);  // the tree's names are views of the shards' headers, which live as long
      }
      tree_.emplace(TreeReader::of_plain_tensors(tensors, plain_framework_));
    } else {
      tree_.emplace(TreeReader::of_plain_file(source_.shards.front().reader.header(), plain_framework_));
    }
    plain_ = true;
  }

  bool structured() const { return tree_.has_value() && !plain_; }
  std::size_t root() const { return tree().root(); }
  std::size_t shard_count() const { return source_.shards.size(); }
  std::size_t node_count() const { return tree_ ? tree_->tape().size() : 0; }

  nb::object buffer(std::size_t shard) const { return source_.shards.at(shard).buffer; }
  nb::object metadata(std::size_t shard) const {
    return metadata_to_python(source_.shards.at(shard).reader.header(), structured());
  }
  nb::list tensors(std::size_t shard) const { return tensor_table(source_.shards.at(shard).reader.header()); }
  // The digest of the shard's checksums entry (what a sharded save's index records of it), or None.
  nb::object entry_digest(std::size_t shard) const {
    const std::optional<std::uint64_t> digest = checksums_entry_digest(source_.shards.at(shard).reader.header());
    return digest ? nb::object(nb::int_(*digest)) : nb::none();
  }

  // (JSON kind, tag or None, element/member count, index one past the subtree, what the node holds as the lazy API
  // names it: a tagged node by its tag, plain JSON by its Python type, "none" for null).
  nb::tuple node(std::size_t i) const {
    const Node& n = at(i);
    static const char* const json_kinds[] = {"null", "false", "true", "int", "float", "string", "array", "object"};
    const std::string_view tag = tree_->tape().tag(i);
    const Kind plain = tag.empty() ? *tree_->kind(i) : Kind::Null;
    const std::string_view kind = !tag.empty() ? tag : plain == Kind::Null ? "none" : kind_name(plain);
    nb::object tag_text = tag.empty() ? nb::none() : nb::object(py_str(tag));
    return nb::make_tuple(json_kinds[static_cast<int>(n.kind)], tag_text, n.count, n.end, py_str(kind));
  }

  // The children of an object or array node in order: [(member name, value node)] or [(position, element node)].
  nb::list entries(std::size_t i) const {
    const Node& n = at(i);
    if (!is_container(n)) throw ArgumentError(ErrorCode::InvalidArgument, "node " + std::to_string(i) + " is not a container");
    const Tape& tape = tree_->tape();
    nb::list out;
    std::size_t c = i + 1;
    for (std::uint32_t k = 0; k < n.count; ++k, c = tape.next(c)) {
      nb::object key = n.kind == NodeKind::Object ? nb::object(py_str(tape[c++].text)) : nb::object(nb::int_(k));
      out.append(nb::make_tuple(key, c));
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
      case NodeKind::String: return py_str(n.text);
      default: throw ArgumentError(ErrorCode::InvalidArgument, "node " + std::to_string(i) + " is a container");
    }
  }

  // (the node `i` stands for, the reference id when it is a reference, else None): see TreeReader::follow.
  nb::tuple follow(std::size_t i) const {
    at(i);
    std::int64_t ref_id = 0;
    const std::size_t target = tree_->follow(i, ref_id, failing);
    return nb::make_tuple(target, ref_id != 0 ? nb::object(nb::int_(ref_id)) : nb::none());
  }

  // An object, ext or plugin node stands for what it wraps (the base content of a built-in subclass, else the
  // attributes, else a plugin's or to_data's value), which may itself be one: the node at the end of that chain, or
  // npos when it wraps nothing. Each chain is followed once (a file can chain every node to the one before it
  // through references, and a walk asks for each of them).
  std::size_t unwrapped(std::size_t i) const {
    const Tape& tape = tree_->tape();
    std::unordered_set<std::size_t, SeededIntHash> chain;
    std::size_t end = i;
    for (;;) {
      if (const auto known = unwrapped_.find(end); known != unwrapped_.end()) {
        end = known->second;
        break;
      }
      const std::optional<Kind> kind = tree_->kind(end);
      if (kind != Kind::Object && kind != Kind::Ext && kind != Kind::Plugin) break;
      if (!chain.insert(end).second) failing("a reference to itself");
      std::size_t wrapped = Tape::npos;
      for (const char* field : {"value", "attrs", "data"}) {
        if ((wrapped = tape.member(end, field)) != Tape::npos) break;
      }
      if (wrapped == Tape::npos) {
        end = Tape::npos;
        break;
      }
      std::int64_t ref_id = 0;
      end = tree_->follow(wrapped, ref_id, failing);
    }
    for (const std::size_t node : chain) unwrapped_[node] = end;
    return end;
  }

  // The children of the container node `i` (followed already), in stored order, as (indexed, [(key or index, child
  // node)], [(position, key node)]): a mapping's keys that are not JSON scalars are None in the list, to be built from
  // their nodes (by the caller, within a load's limits); the third is None for anything but a mapping's pairs. None
  // for a leaf.
  nb::object children(std::size_t i) const {
    at(i);
    i = unwrapped(i);
    if (i == Tape::npos) return nb::none();
    const Tape& tape = tree_->tape();
    const Node& n = tape[i];
    if (n.kind == NodeKind::Array) return walk_children(true, entries(i));
    if (n.kind != NodeKind::Object) return nb::none();
    const std::optional<Kind> kind = tree_->kind(i);
    if (!kind) return nb::none();
    if (tape.tag(i).empty()) return walk_children(false, entries(i));
    const std::size_t items = tape.member(i, "items");
    const bool has_items = items != Tape::npos && tape[items].kind == NodeKind::Array;
    const std::size_t fields = tape.member(i, "fields");
    switch (*kind) {
      case Kind::NamedTuple: {
        // [(field name, value node)]: the names of "fields" beside the values of "items".
        nb::list pairs;
        std::uint32_t count = 0;
        std::size_t v = tree_->checked_items(i, *kind, count, failing);
        std::size_t name = fields + 1;
        for (std::uint32_t k = 0; k < count; ++k, name = tape.next(name), v = tape.next(v)) pairs.append(nb::make_tuple(value(name), v));
        return walk_children(false, pairs);
      }
      case Kind::Dataclass:
        if (fields == Tape::npos || tape[fields].kind != NodeKind::Object) return nb::none();
        return walk_children(false, entries(fields));
      default: break;
    }
    if (!has_items) return nb::none();
    if (traits(*kind).shape == Shape::Sequence) {
      std::uint32_t count = 0;
      tree_->checked_items(i, *kind, count, failing);
      return walk_children(true, entries(items));
    }
    if (traits(*kind).shape != Shape::Mapping) return nb::none();
    nb::list pairs, to_build;
    tree_->for_each_pair(i, failing, [&](std::uint32_t k, std::size_t key, std::size_t value_at) {
      const bool built = is_container(tape[key]);
      pairs.append(nb::make_tuple(built ? nb::none() : value(key), value_at));
      if (built) to_build.append(nb::make_tuple(k, key));
    });
    return nb::make_tuple(false, pairs, to_build);
  }

  // {kind: {name: count}} of every class (and plugin type) the tree names, in one pass over its nodes: nothing is
  // built or followed (a reference names nothing itself).
  nb::dict type_names() const {
    const Tape& tape = tree().tape();
    nb::dict out;
    for (std::size_t i = tree_->root(); i < tape.next(tree_->root()); ++i) {
      const std::optional<Kind> kind = tree_->kind(i);
      const std::string_view tag = tape.tag(i);
      if (!kind || !traits(*kind).names_class || tag.empty()) continue;
      const std::size_t type = tape.member(i, field::type);  // the first, as the loader reads it
      if (type == Tape::npos || tape[type].kind != NodeKind::String) continue;
      nb::object names = out.get(py_str(tag), nb::none());
      if (names.is_none()) out[py_str(tag)] = names = nb::dict();
      const nb::str name = py_str(tape[type].text);
      names[name] = nb::cast<std::size_t>(nb::cast<nb::dict>(names).get(name, nb::int_(0))) + 1;
    }
    return out;
  }

  // (dtype, shape, nbytes, shard, offset from the start of its file) of tensor `name`, or None.
  nb::object tensor(std::string_view name) const {
    const TensorSource::Found found = source_.find(name);
    if (found.info == nullptr) return nb::none();
    const TensorInfo& t = *found.info;
    const auto shard = static_cast<std::size_t>(found.shard - source_.shards.data());
    return nb::make_tuple(py_str(dtype_name(t.dtype)), shape_tuple(t.shape), t.nbytes(), shard, file_range(found).first);
  }

  // Builds the object at node `i`; anything it refers to outside itself is built too, and nothing else is read.
  nb::object load(std::size_t i, nb::handle context, bool verify) {
    at(i);
    if (fetches(source_)) {
      fetch_for({i});
    } else if (!mapped_) {
      // Whole buffers in memory: nothing to read ahead.
    } else if (i == tree_->root()) {
      // The whole data: read as load_file reads, with the kernel's readahead.
      for (const Shard& shard : source_.shards) mapping(shard).set_access(Access::Whole);
    } else {
      prefetch(i);
    }
    LoadOptions options = with_context(context);
    options.verify = verify;
    return build_node(*tree_, i, source_, options, i != tree_->root());
  }

  // Builds the objects at several nodes (a walk's leaves or keys) in one pass: what they share is built once.
  nb::list load_many(const std::vector<std::size_t>& nodes, nb::handle context, bool keys) {
    for (const std::size_t i : nodes) at(i);
    if (fetches(source_)) {
      fetch_for(nodes);
    } else if (mapped_) {
      for (const std::size_t i : nodes) prefetch(i);
    }
    return build_nodes(*tree_, nodes, source_, with_context(context), keys, failed_at_);
  }

  // After load_many raised: the position in its list of the node that raised it.
  std::size_t failed_at() const { return failed_at_; }

 private:
  void read_tree(const std::string& name, const std::optional<std::string>& schema) {
    naming_file(name, [&] {
      source_.check_unique_names();
      const SchemaLimits limits = schema_limits(options_.max_depth, options_.max_nodes);
      std::optional<Tape> document;
      if (schema) {
        document = parse_schema_json(*schema, limits);
      } else if (source_.shards.size() == 1) {
        document = read_schema(source_.shards.front().reader, limits);
      }
      if (document) tree_.emplace(std::move(*document));
    });
  }
  static bool is_container(const Node& n) { return n.kind == NodeKind::Array || n.kind == NodeKind::Object; }
  static nb::tuple walk_children(bool indexed, nb::list entries) { return nb::make_tuple(indexed, entries, nb::none()); }
  // Problems met walking the tree are the file's: the caller adds the file's name and the node's path.
  static constexpr Fail failing{nullptr, [](const void*, const std::string& why, ErrorCode code) {
    raise(code, "at $: " + why);
  }};
  LoadOptions with_context(nb::handle context) const { return {options_.max_depth, options_.max_nodes, context}; }
  const TreeReader& tree() const {
    if (!tree_) throw ArgumentError(ErrorCode::InvalidArgument, "the file holds no structure (no schema)");
    return *tree_;
  }
  const Node& at(std::size_t i) const {
    if (i >= tree().tape().size()) throw ArgumentError(ErrorCode::InvalidArgument, "node " + std::to_string(i) + " is out of range");
    return tree_->tape()[i];
  }
  // Starts reading, in the background, the bytes of every tensor the subtree at `i` names (a view's storage too).
  void prefetch(std::size_t i) const {
    for_each_tensor(i, [](const TensorSource::Found& found) {
      const auto [begin, end] = file_range(found);
      mapping(*found.shard).prefetch(begin, end);
    });
  }

  // Has the source's fetch fill, in one call (which coalesces and parallelises), the tensors the subtrees at `nodes`
  // name; anything else a load reaches (a shared object defined elsewhere) is fetched when it is read.
  void fetch_for(const std::vector<std::size_t>& nodes) const {
    nb::list ranges;
    for (const std::size_t i : nodes) for_each_tensor(i, [&](const TensorSource::Found& found) { ranges.append(fetch_range(source_, found)); });
    if (ranges.size() > 0) source_.fetch(ranges);
  }

  // Calls `use` with every tensor the subtree at `i` names (a view's storage too) that a shard holds.
  template <class Use>
  void for_each_tensor(std::size_t i, Use&& use) const {
    const Tape& tape = tree_->tape();
    for (std::size_t n = i; n < tape[i].end; ++n) {
      const std::optional<Kind> kind = tree_->kind(n);
      const std::string_view named = kind == Kind::Tensor ? field::name : (kind == Kind::Bytes || kind == Kind::ByteArray) ? field::tensor : std::string_view();
      if (named.empty()) continue;
      for (const std::string_view key : {named, field::storage}) {
        const std::size_t at = tape.member(n, key);
        if (at == Tape::npos || tape[at].kind != NodeKind::String) continue;
        const TensorSource::Found found = source_.find(tape[at].text);
        if (found.info != nullptr) use(found);  // a tensor no shard holds: the load reports it
      }
    }
  }

  static const MappedFile& mapping(const Shard& shard) { return *std::static_pointer_cast<const MappedFile>(shard.reader.owner()); }

  LoadOptions options_;
  TensorSource source_;
  std::optional<TreeReader> tree_;
  bool plain_ = false;
  // Whether the shards are mapped files (else buffers: read whole, or filled by the source's fetch).
  bool mapped_ = true;
  std::string plain_framework_;
  std::size_t failed_at_ = 0;
  // Where each object, ext or plugin node's chain of wrapped values ends (see unwrapped).
  mutable std::unordered_map<std::size_t, std::size_t, SeededIntHash> unwrapped_;
};

}  // namespace

void TensorSource::fetch_bytes(const Found& found) const {
  if (!fetches(*this)) return;
  nb::list ranges;
  ranges.append(fetch_range(*this, found));
  fetch(ranges);
}

void register_lazy_file(nb::module_& m) {
  nb::class_<LazyFile>(m, "LazyFile",
                       "A file opened lazily: its header and schema parsed, its tensors mapped but not read. Nodes are "
                       "addressed by their index in the schema's pre-order tape.")
      .def(nb::init<const std::vector<std::filesystem::path>&, const std::optional<std::string>&, std::uint32_t, std::uint64_t, std::uint64_t>(),
           "paths"_a, "schema"_a.none(), "max_depth"_a, "max_nodes"_a, "max_header_size"_a,
           "Map `paths` (one file, or the shards of a sharded save with `schema`, the schema document that names their "
           "tensors) and parse the schema.")
      .def_static("from_buffers", &LazyFile::from_buffers, "buffers"_a, "fetch"_a.none(), "name"_a, "schema"_a.none(),
                  "max_depth"_a, "max_nodes"_a, "max_header_size"_a, nb::rv_policy::take_ownership,
                  "Open buffers holding whole files, or their headers with `fetch` (called with [(shard, begin, end)]) "
                  "to fill the bytes of the tensors a load reads first.")
      .def("read_as_plain", &LazyFile::read_as_plain, "framework"_a, "names"_a.none() = nb::none(),
           "Read files with no schema as the dict of their tensors, saved from `framework`: a file's in header order, "
           "the shards' of a checkpoint as `names` orders them.")
      .def_prop_ro("structured", &LazyFile::structured, "Whether the file has a safestructures schema.")
      .def_prop_ro("root", &LazyFile::root, "The root node.")
      .def_prop_ro("shard_count", &LazyFile::shard_count, "The number of files mapped.")
      .def_prop_ro("node_count", &LazyFile::node_count, "The number of schema nodes.")
      .def("buffer", &LazyFile::buffer, "shard"_a = 0, "The FileBuffer of a mapped file.")
      .def("metadata", &LazyFile::metadata, "shard"_a = 0, "A file's metadata without the reserved keys (None when it has none).")
      .def("tensors", &LazyFile::tensors, "shard"_a = 0, "A file's tensors: [(name, dtype, shape, offset, nbytes)].")
      .def("entry_digest", &LazyFile::entry_digest, "shard"_a = 0, "The digest of a file's checksums entry, or None.")
      .def("node", &LazyFile::node, "index"_a, "(JSON kind, tag or None, count, end, kind) of a node.")
      .def("entries", &LazyFile::entries, "index"_a, "[(member name, value node)] of an object node, [(position, node)] of an array.")
      .def("value", &LazyFile::value, "index"_a, "The value of a scalar node.")
      .def("follow", &LazyFile::follow, "index"_a, "(the node a node stands for, its reference id or None): references followed.")
      .def("children", &LazyFile::children, "index"_a,
           "(indexed, [(key, child)], [(position, key node)]) of a container node, the keys to build listed; None for a leaf.")
      .def("type_names", &LazyFile::type_names, "{kind: {class name: count}} of every class the tree names.")
      .def("tensor", &LazyFile::tensor, "name"_a, "(dtype, shape, nbytes, shard, offset) of a tensor, or None.")
      .def("load", &LazyFile::load, "index"_a, "context"_a.none(), "verify"_a = false,
           "Build the Python object at a node; with `verify`, check each tensor it reads (and the headers) against the "
           "checksums saved with them.")
      .def("load_many", &LazyFile::load_many, "indices"_a, "context"_a.none(), "keys"_a = false,
           "Build the Python objects at several nodes in one pass (what they share is built once); with `keys`, the "
           "keys of one mapping, hashed within the load's limits.")
      .def_prop_ro("failed_at", &LazyFile::failed_at, "After load_many raised: the position of the node that raised it.");
}

}  // namespace safestructures::bindings
