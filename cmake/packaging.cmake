# Installation (GNUInstallDirs) and the Debian packages (CPack DEB), issue 17:
#   lienthong-hub          hubd, hubctl (the dashboard is inside hubd), the
#                          default configuration, hubd.service
#   lienthong-adapter      hub-adapter, the plugins, hub-adapter@.service
#   liblienthong-adp-dev   the SDK: headers, libadp.so (SONAME libadp.so.0),
#                          libadp.a, lienthong-adp.pc, the CMake package
# `cmake --install build --component hub|adapter|dev`; `cpack` in the build
# directory makes the three .deb files (tests/package/run.sh does both).
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(HUB_PLUGIN_INSTALL_DIR ${CMAKE_INSTALL_LIBDIR}/lienthong/plugins)
# Units go where Debian 12's systemd looks for packaged units.
set(HUB_UNIT_DIR "/lib/systemd/system" CACHE PATH "Where systemd unit files are installed")
target_compile_definitions(hub-adapter PRIVATE
  HUB_PLUGIN_INSTALL_DIR="${CMAKE_INSTALL_FULL_LIBDIR}/lienthong/plugins")

# ---- the SDK as others link it --------------------------------------------
# libadp.a in the build (target adp) leaves hub_common and the generated
# protobuf code out; the installed libraries carry them, so that a program
# needs only `pkg-config --cflags --libs lienthong-adp`.
# HUB_COMMON_SOURCES: common/CMakeLists.txt's list.
add_library(adp_dist_objects OBJECT
  ${CMAKE_SOURCE_DIR}/adapters/sdk/adp.c ${CMAKE_SOURCE_DIR}/adapters/sdk/adp_journal.c
  ${HUB_COMMON_SOURCES} ${HUB_PROTO_SOURCES})
target_include_directories(adp_dist_objects PRIVATE ${CMAKE_SOURCE_DIR}/common
                           ${CMAKE_SOURCE_DIR}/adapters/sdk ${PROTO_OUT})
target_link_libraries(adp_dist_objects PRIVATE PkgConfig::ZMQ PkgConfig::SODIUM
                      PkgConfig::OPENSSL PkgConfig::PROTOBUFC)
set_source_files_properties(${HUB_PROTO_SOURCES} TARGET_DIRECTORY adp_dist_objects
                            PROPERTIES COMPILE_OPTIONS -Wno-unused-parameter)

set(HUB_SDK_HEADERS ${CMAKE_SOURCE_DIR}/adapters/sdk/adp.h
    ${CMAKE_SOURCE_DIR}/adapters/sdk/adp_plugin.h ${CMAKE_SOURCE_DIR}/adapters/sdk/adp_journal.h
    ${CMAKE_SOURCE_DIR}/common/hub_error.h)
add_library(adp_shared SHARED $<TARGET_OBJECTS:adp_dist_objects>)
add_library(adp_static STATIC $<TARGET_OBJECTS:adp_dist_objects>)
string(REPLACE "." ";" HUB_VERSION_PARTS ${PROJECT_VERSION})
list(GET HUB_VERSION_PARTS 0 HUB_SOVERSION)
set_target_properties(adp_shared PROPERTIES OUTPUT_NAME adp EXPORT_NAME adp
  VERSION ${PROJECT_VERSION} SOVERSION ${HUB_SOVERSION}
  LIBRARY_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/lib/sdk)
set_target_properties(adp_static PROPERTIES OUTPUT_NAME adp EXPORT_NAME adp_static
  ARCHIVE_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/lib/sdk)
# Plain library names: the exported package must not name this build's
# pkg-config targets.
target_link_libraries(adp_shared PRIVATE ${ZMQ_LIBRARIES} ${SODIUM_LIBRARIES}
                      ${PROTOBUFC_LIBRARIES} ${OPENSSL_LIBRARIES} pthread)
target_link_libraries(adp_static INTERFACE ${ZMQ_LIBRARIES} ${SODIUM_LIBRARIES}
                      ${PROTOBUFC_LIBRARIES} ${OPENSSL_LIBRARIES} pthread)
target_link_options(adp_shared PRIVATE -Wl,--no-undefined)
foreach(t adp_shared adp_static)
  target_include_directories(${t} INTERFACE
    $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}/lienthong>)
endforeach()

# ---- install rules --------------------------------------------------------
install(TARGETS hubd hubctl RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT hub)
install(FILES ${CMAKE_SOURCE_DIR}/deploy/hubd.conf.packaged
        DESTINATION ${CMAKE_INSTALL_FULL_SYSCONFDIR}/lienthong RENAME hubd.conf COMPONENT hub)
install(FILES ${CMAKE_SOURCE_DIR}/deploy/systemd/hubd.service DESTINATION ${HUB_UNIT_DIR}
        COMPONENT hub)
install(FILES ${CMAKE_SOURCE_DIR}/deploy/hubd.conf.example
        ${CMAKE_SOURCE_DIR}/deploy/policy.conf.example
        ${CMAKE_SOURCE_DIR}/deploy/delegations.conf.example
        DESTINATION ${CMAKE_INSTALL_DATAROOTDIR}/doc/lienthong-hub/examples COMPONENT hub)
install(FILES ${CMAKE_SOURCE_DIR}/README.md ${CMAKE_SOURCE_DIR}/docs/OPERATIONS.md
        DESTINATION ${CMAKE_INSTALL_DATAROOTDIR}/doc/lienthong-hub COMPONENT hub
        OPTIONAL)

install(TARGETS hub-adapter lth-popgen lth-trail RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR}
        COMPONENT adapter)
get_property(HUB_ALL_PLUGINS GLOBAL PROPERTY HUB_PLUGINS)
install(TARGETS ${HUB_ALL_PLUGINS} LIBRARY DESTINATION ${HUB_PLUGIN_INSTALL_DIR}
        COMPONENT adapter)
install(FILES ${CMAKE_SOURCE_DIR}/deploy/systemd/hub-adapter@.service
        DESTINATION ${HUB_UNIT_DIR} COMPONENT adapter)
install(FILES ${CMAKE_SOURCE_DIR}/adapters/README.md
        ${CMAKE_SOURCE_DIR}/adapters/plugins/httpbridge/httpbridge.conf.example
        ${CMAKE_SOURCE_DIR}/adapters/plugins/sqlquery/sqlquery.conf.example
        ${CMAKE_SOURCE_DIR}/deploy/disclosure-demo.conf
        ${CMAKE_SOURCE_DIR}/deploy/adapters/ndxp.conf
        DESTINATION ${CMAKE_INSTALL_DATAROOTDIR}/doc/lienthong-adapter COMPONENT adapter)
# The hub-to-hub gateway (hubgate): its example and its guide.
install(FILES ${CMAKE_SOURCE_DIR}/deploy/hubgate.conf.example ${CMAKE_SOURCE_DIR}/docs/HUB2HUB.md
        DESTINATION ${CMAKE_INSTALL_DATAROOTDIR}/doc/lienthong-adapter COMPONENT adapter)
# The working calendar the dossier adapters read (plugin.calendar), and the
# sample procedure catalogue (plugin.catalogue_file; copy it to /etc to edit).
install(FILES ${CMAKE_SOURCE_DIR}/deploy/calendar-vn.tsv ${CMAKE_SOURCE_DIR}/deploy/catalogue-hn.tsv
        DESTINATION ${CMAKE_INSTALL_DATAROOTDIR}/lienthong COMPONENT adapter)

install(TARGETS adp_shared adp_static EXPORT lienthong-adp-targets
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT dev
                NAMELINK_COMPONENT dev
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT dev)
install(FILES ${HUB_SDK_HEADERS} DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/lienthong
        COMPONENT dev)
configure_file(${CMAKE_SOURCE_DIR}/deploy/lienthong-adp.pc.in
               ${CMAKE_BINARY_DIR}/lienthong-adp.pc @ONLY)
install(FILES ${CMAKE_BINARY_DIR}/lienthong-adp.pc
        DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig COMPONENT dev)
set(HUB_CMAKE_PKG_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/lienthong-adp)
install(EXPORT lienthong-adp-targets NAMESPACE lienthong:: DESTINATION ${HUB_CMAKE_PKG_DIR}
        COMPONENT dev)
configure_package_config_file(${CMAKE_SOURCE_DIR}/cmake/lienthong-adpConfig.cmake.in
  ${CMAKE_BINARY_DIR}/lienthong-adpConfig.cmake INSTALL_DESTINATION ${HUB_CMAKE_PKG_DIR})
write_basic_package_version_file(${CMAKE_BINARY_DIR}/lienthong-adpConfigVersion.cmake
  COMPATIBILITY SameMajorVersion)
install(FILES ${CMAKE_BINARY_DIR}/lienthong-adpConfig.cmake
        ${CMAKE_BINARY_DIR}/lienthong-adpConfigVersion.cmake
        DESTINATION ${HUB_CMAKE_PKG_DIR} COMPONENT dev)

# Debian wants a copyright file and a compressed changelog in every
# package's doc directory.
string(TIMESTAMP HUB_NOW "%Y")
file(READ ${CMAKE_SOURCE_DIR}/deploy/debian/changelog HUB_CHANGELOG)
string(REPLACE "@VERSION@" "${PROJECT_VERSION}" HUB_CHANGELOG "${HUB_CHANGELOG}")
file(WRITE ${CMAKE_BINARY_DIR}/debian/changelog.Debian "${HUB_CHANGELOG}")
execute_process(COMMAND gzip -9nf ${CMAKE_BINARY_DIR}/debian/changelog.Debian)
foreach(comp_pkg "hub;lienthong-hub" "adapter;lienthong-adapter" "dev;liblienthong-adp-dev")
  list(GET comp_pkg 0 comp)
  list(GET comp_pkg 1 pkg)
  install(FILES ${CMAKE_SOURCE_DIR}/deploy/debian/copyright
          ${CMAKE_BINARY_DIR}/debian/changelog.Debian.gz
          DESTINATION ${CMAKE_INSTALL_DATAROOTDIR}/doc/${pkg} COMPONENT ${comp})
endforeach()

# ---- CPack DEB ------------------------------------------------------------
set(CPACK_GENERATOR DEB)
set(CPACK_STRIP_FILES ON)
set(CPACK_PACKAGE_NAME lienthong-hub)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_VENDOR "Liên Thông Hub")
set(CPACK_PACKAGE_CONTACT "Liên Thông Hub operators <ops@lienthong.invalid>")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_COMPONENTS_ALL hub adapter dev)
set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_RELEASE 1)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_HOMEPAGE "https://github.com/lienthong/lienthong-hub")
set(CPACK_DEBIAN_HUB_PACKAGE_NAME lienthong-hub)
set(CPACK_DEBIAN_HUB_PACKAGE_DEPENDS "passwd, init-system-helpers (>= 1.54~)")
set(CPACK_DEBIAN_HUB_PACKAGE_SECTION net)
set(CPACK_COMPONENT_HUB_DESCRIPTION "Liên Thông Hub: the integration hub daemon and its CLI
hubd routes signed protobuf envelopes between a city's systems over
CURVE-encrypted ZeroMQ, stores them durably (LMDB) before acknowledging,
and keeps a hash-chained, signed audit log. hubctl operates it: status,
queues, dead letters, keys, certificates, audit, backup and restore.
Runs as the systemd service hubd.service.")
set(CPACK_DEBIAN_HUB_PACKAGE_CONTROL_EXTRA ${CMAKE_SOURCE_DIR}/deploy/debian/hub/postinst
    ${CMAKE_SOURCE_DIR}/deploy/debian/hub/prerm ${CMAKE_SOURCE_DIR}/deploy/debian/hub/postrm
    ${CMAKE_BINARY_DIR}/debian/hub/conffiles)
set(CPACK_DEBIAN_HUB_PACKAGE_CONTROL_STRICT_PERMISSION ON)
set(CPACK_DEBIAN_ADAPTER_PACKAGE_NAME lienthong-adapter)
set(CPACK_DEBIAN_ADAPTER_PACKAGE_DEPENDS "passwd")
set(CPACK_COMPONENT_ADAPTER_DESCRIPTION "Liên Thông Hub: the adapter runtime and its plugins
hub-adapter joins a system to the hub as an agency member and runs one
adapter plugin (echo, recorder, population database, dossier flow, HTTP
bridge, SQL look-up). One systemd instance per member configuration:
hub-adapter@NAME.service reads /etc/lienthong/adapters/NAME.conf.")
set(CPACK_DEBIAN_ADAPTER_PACKAGE_CONTROL_EXTRA
    ${CMAKE_SOURCE_DIR}/deploy/debian/adapter/postinst)
set(CPACK_DEBIAN_ADAPTER_PACKAGE_CONTROL_STRICT_PERMISSION ON)
set(CPACK_DEBIAN_DEV_PACKAGE_NAME liblienthong-adp-dev)
set(CPACK_DEBIAN_DEV_PACKAGE_SECTION libdevel)
set(CPACK_DEBIAN_DEV_PACKAGE_DEPENDS
    "libzmq3-dev, libsodium-dev, libprotobuf-c-dev, libssl-dev, pkg-config")
set(CPACK_COMPONENT_DEV_DESCRIPTION "Liên Thông Hub: the adapter SDK for C programs
The adapter SDK (adp.h) for systems that join the hub as agency members:
connect with CURVE keys, send signed envelopes, receive, settle. Shared
(libadp.so.0) and static libraries, headers, a pkg-config file
(lienthong-adp) and a CMake package (lienthong-adp).")
# A shlibs file for libadp.so.0 (only the -dev package has a shared
# library) and the ldconfig trigger lintian asks for; CPack adds ldconfig
# calls to the postinst and postrm as well (lintian: maintscript-calls-ldconfig,
# a warning, docs/OPERATIONS.md).
set(CPACK_DEBIAN_PACKAGE_GENERATE_SHLIBS ON)
set(CPACK_DEBIAN_DEV_PACKAGE_CONTROL_EXTRA ${CMAKE_SOURCE_DIR}/deploy/debian/dev/triggers)
set(CPACK_DEBIAN_DEV_PACKAGE_CONTROL_STRICT_PERMISSION ON)
file(WRITE ${CMAKE_BINARY_DIR}/debian/hub/conffiles
     "${CMAKE_INSTALL_FULL_SYSCONFDIR}/lienthong/hubd.conf\n")
include(CPack)
