// The Python callables the tree walkers use for everything that is not a built-in container (set once at import).
#pragma once

#include <nanobind/nanobind.h>

namespace safestructures::bindings {

namespace nb = nanobind;

// The save walk's route for a type it has no exact-type fast path for: what the Python layer's classify(type)
// answers (_types.py's UNSUPPORTED, TENSOR, ... in this order).
enum class SaveRoute : int {
  Unsupported = 0,
  // A tensor of any framework, described by array_entry(obj, name, context).
  Tensor = 1,
  // Saved as the (tag, fields) that reduce(obj) returns, rebuilt by construct[tag](fields).
  Reduce = 2,
  OrderedDict = 3,
  DefaultDict = 4,
  Deque = 5,
  Counter = 6,
};

struct Hooks {
  nb::object classify;          // type -> SaveRoute
  nb::object reduce;            // (obj, context) -> (tag, {field: value}); TypeError when the object cannot be stored
  // (tensor, proposed name, context) -> (stored dtype | None, shape, data, {schema fields}); a None dtype writes no
  // tensor (the node views an earlier tensor's storage).
  nb::object array_entry;
  nb::object factory_name;      // defaultdict default_factory -> name (raises TypeError when not storable)
  nb::object construct;         // {tag: callable(fields, context) -> object}
  nb::object factories;         // {name: default_factory}
  // (buffer, dtype, shape, offset, nbytes, fields, context) -> tensor; dtype and the rest are None for a view node.
  nb::object make_tensor;
  nb::object numpy_dtype;        // safetensors dtype name -> its numpy dtype (the numpy adapter's table)
  nb::object load_bar;           // a ContextVar: the progress bar of the load running, or None (then make_tensor counts)
  nb::object ordered_dict_type;
  nb::object defaultdict_type;
  nb::object deque_type;
  nb::object counter_type;
  nb::object default_context;    // file size -> the context of a load with every default (_walkers.default_context)
};

// The hooks, or a TypeError when safestructures' Python layer has not installed them.
const Hooks& hooks();
void set_hooks(nb::dict hooks);

}  // namespace safestructures::bindings
