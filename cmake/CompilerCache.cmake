# Use ccache when it is installed: rebuilding LibTorch-heavy translation units is the slow part.
find_program(HNSTUDIO_CCACHE ccache)
if(HNSTUDIO_CCACHE AND NOT CMAKE_CXX_COMPILER_LAUNCHER)
    # Precompiled headers change the hash of every compile unless ccache is told to expect them.
    set(CMAKE_CXX_COMPILER_LAUNCHER
        "${CMAKE_COMMAND};-E;env;CCACHE_SLOPPINESS=pch_defines,time_macros,include_file_mtime,include_file_ctime;${HNSTUDIO_CCACHE}")
    message(STATUS "ccache: ${HNSTUDIO_CCACHE}")
endif()
