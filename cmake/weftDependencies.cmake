# How weft finds the external libraries it links. weft's own build includes this file, and so
# does the installed weftConfig.cmake, so the imported targets the exported weft targets name
# are made the same way on both sides.
#
# Every library is found under a name of weft's own: WEFT_DEP_<NAME> gives the imported target
# PkgConfig::WEFT_DEP_<NAME> and only WEFT_DEP_<NAME>_* variables. A project that uses weft
# keeps its own LIBEVENT_LIBRARIES, PkgConfig::LIBEVENT and the like untouched, whether it
# finds weft with find_package() or builds it with add_subdirectory().
#
# Which libraries there are is listed once, in the top-level CMakeLists.txt (weft_dependency);
# the config is handed the same list when it is generated. The caller has found PkgConfig.

# weft_import_dependencies(<missing-var> "<NAME>:<module>[ <module>...];..."): for each entry,
# PkgConfig::WEFT_DEP_<NAME> from pkg-config, made once per directory. The modules that could
# not be found are put in <missing-var>; nothing else is set in the caller's scope.
function(weft_import_dependencies missing_var specs)
  set(missing "")
  foreach(spec IN LISTS specs)
    string(REGEX REPLACE "[: ]+" ";" spec "${spec}")
    list(POP_FRONT spec name)
    if(NOT TARGET PkgConfig::WEFT_DEP_${name})
      pkg_check_modules(WEFT_DEP_${name} QUIET IMPORTED_TARGET ${spec})
    endif()
    if(NOT TARGET PkgConfig::WEFT_DEP_${name})
      list(APPEND missing ${spec})
    endif()
  endforeach()
  set(${missing_var} "${missing}" PARENT_SCOPE)
endfunction()
