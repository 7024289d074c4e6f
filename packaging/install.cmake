# Run by `cmake --install` (and by CPack): the files whose text names
# install paths, written for the prefix being installed to (CPack installs
# with prefix /usr whatever the build was configured with).
#   SRC, BUILDDIR, LIBDIR, BINDIR: set by the install(CODE) that includes it.
if(CMAKE_INSTALL_PREFIX STREQUAL "/usr")
  set(_etc "/etc/pagoflex")
else()
  set(_etc "${CMAKE_INSTALL_PREFIX}/etc/pagoflex")
endif()
set(_plugins "${CMAKE_INSTALL_PREFIX}/${LIBDIR}/pagoflex/plugins")
set(_stage "${BUILDDIR}/pagoflex-install-stage")
file(MAKE_DIRECTORY "${_stage}")

# The example config, with the plugin folder this prefix installs to.
file(READ "${SRC}/etc/pagoflex.cfg" _cfg)
string(REPLACE "/usr/local/lib/pagoflex/plugins" "${_plugins}" _cfg "${_cfg}")
file(WRITE "${_stage}/pagoflex.cfg" "${_cfg}")
file(INSTALL DESTINATION "${_etc}" TYPE FILE PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ
     FILES "${_stage}/pagoflex.cfg")

# The systemd unit, naming the installed binary and config.
file(READ "${SRC}/packaging/systemd/pagoflexd.service.in" _unit)
string(REPLACE "{{BINDIR}}" "${CMAKE_INSTALL_PREFIX}/${BINDIR}" _unit "${_unit}")
string(REPLACE "{{SYSCONFDIR}}" "${_etc}" _unit "${_unit}")
string(REPLACE "{{DOCDIR}}" "${CMAKE_INSTALL_PREFIX}/share/doc/pagoflex" _unit "${_unit}")
file(WRITE "${_stage}/pagoflexd.service" "${_unit}")
file(INSTALL DESTINATION "${CMAKE_INSTALL_PREFIX}/lib/systemd/system" TYPE FILE
     FILES "${_stage}/pagoflexd.service")
