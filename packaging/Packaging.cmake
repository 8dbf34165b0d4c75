# Installation layout and the Debian package of the studio (cpack -G DEB from the build folder).
# packaging/check-deb.sh builds the package and installs it into a clean Debian 12 root.

include(GNUInstallDirs)

set(HNSTUDIO_APP_ID "io.github.hypernetstudio.HypernetStudio")
set(HNSTUDIO_DATA_DIR "${CMAKE_INSTALL_DATADIR}/hypernet-studio")

install(FILES "${PROJECT_SOURCE_DIR}/packaging/linux/${HNSTUDIO_APP_ID}.desktop"
        DESTINATION "${CMAKE_INSTALL_DATADIR}/applications")
install(FILES "${PROJECT_SOURCE_DIR}/packaging/linux/${HNSTUDIO_APP_ID}.metainfo.xml"
        DESTINATION "${CMAKE_INSTALL_DATADIR}/metainfo")
install(FILES "${PROJECT_SOURCE_DIR}/resources/icons/hnstudio.svg"
        DESTINATION "${CMAKE_INSTALL_DATADIR}/icons/hicolor/scalable/apps"
        RENAME "${HNSTUDIO_APP_ID}.svg")
# The templates are also compiled into the program; the files are for users to copy and edit.
install(DIRECTORY "${PROJECT_SOURCE_DIR}/resources/templates"
        DESTINATION "${HNSTUDIO_DATA_DIR}")
if(EXISTS "${PROJECT_SOURCE_DIR}/resources/demo")
    # runs/ is where `hnstudio train resources/demo/demo-run.json` writes in a checkout.
    install(DIRECTORY "${PROJECT_SOURCE_DIR}/resources/demo" DESTINATION "${HNSTUDIO_DATA_DIR}"
            PATTERN "runs" EXCLUDE)
endif()

set(CPACK_PACKAGE_NAME "hypernet-studio")
set(CPACK_PACKAGE_VENDOR "Hypernet Studio")
set(CPACK_PACKAGE_CONTACT "Hypernet Studio developers <hnstudio@localhost>")
set(CPACK_PACKAGE_VERSION "${PROJECT_VERSION}")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "${PROJECT_DESCRIPTION}")
set(CPACK_PACKAGE_INSTALL_DIRECTORY "/usr")
set(CPACK_PACKAGING_INSTALL_PREFIX "/usr")
set(CPACK_GENERATOR "DEB")
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
# Library dependencies (LibTorch, Qt, OpenCV, QCustomPlot, ...) come from dpkg-shlibdeps.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
# LibTorch's float32 matmul is ~40x slower on the reference BLAS.
set(CPACK_DEBIAN_PACKAGE_DEPENDS "libopenblas0")
set(CPACK_DEBIAN_PACKAGE_SECTION "graphics")

include(CPack)
