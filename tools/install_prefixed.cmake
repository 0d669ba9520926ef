# Run by `cmake --install` (and by cpack): what names the install prefix is
# made here, at install time, because `cmake --install --prefix P` may set
# the prefix long after configure. The systemd units get the prefix's
# bin/ and doc/ in ExecStart and Documentation; mount.shardfs is a
# relative link in the prefix's sbin/, so that the tree can be moved
# (DESTDIR, dpkg -x) and still resolve. file(INSTALL) honours DESTDIR and
# records every file in install_manifest.txt.
set(prefix "${CMAKE_INSTALL_PREFIX}")
set(SHARDFS_BINDIR "${prefix}/bin")
set(SHARDFS_DOCDIR "${prefix}/share/doc/shardfs")
file(REMOVE_RECURSE "${SHARDFS_STAGE}")
foreach(unit shardfs-node@.service shardfs-mount@.service shardfs-repair.service)
  configure_file("${SHARDFS_SOURCE_DIR}/tools/systemd/${unit}.in" "${SHARDFS_STAGE}/${unit}" @ONLY)
endforeach()
file(INSTALL "${SHARDFS_STAGE}/shardfs-node@.service" "${SHARDFS_STAGE}/shardfs-mount@.service"
     "${SHARDFS_STAGE}/shardfs-repair.service"
     DESTINATION "${prefix}/lib/systemd/system" FILE_PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
file(CREATE_LINK ../bin/shardfs "${SHARDFS_STAGE}/mount.shardfs" SYMBOLIC)
file(INSTALL "${SHARDFS_STAGE}/mount.shardfs" DESTINATION "${prefix}/sbin")
