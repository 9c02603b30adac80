// Storage of the Python layer's hooks; they live as long as the interpreter.
#include "hooks.hpp"

#include <memory>

namespace safestructures::bindings {
namespace {

// Deliberately leaked: destroying Python objects after the interpreter has finalized would crash at exit.
Hooks* installed = nullptr;

}  // namespace

const Hooks& hooks() {
  if (installed == nullptr) throw nb::type_error("safestructures._core hooks are not installed; import safestructures first");
  return *installed;
}

void set_hooks(nb::dict given) {
  auto next = new Hooks{
      given["classify"],          given["reduce"],      given["array_entry"], given["factory_name"],
      given["construct"],         given["factories"],   given["make_tensor"], given["ordered_dict_type"],
      given["defaultdict_type"],  given["deque_type"],  given["counter_type"],
  };
  installed = next;
}

}  // namespace safestructures::bindings
