# Debian package of the studio (cpack -G DEB). Desktop integration files live in packaging/linux.

set(CPACK_PACKAGE_NAME "hypernet-studio")
set(CPACK_PACKAGE_VENDOR "Hypernet Studio")
set(CPACK_PACKAGE_CONTACT "Hypernet Studio developers")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "${PROJECT_DESCRIPTION}")
set(CPACK_GENERATOR "DEB")
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_SECTION "graphics")

include(CPack)
