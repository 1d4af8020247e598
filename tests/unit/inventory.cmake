# The images nodes report, as the leader keeps them (checks at the boundary, the cluster's
# view), and ImageLocality in placement and reconcile.
gantry_unit_test(test_fleet_inventory SOURCES test_fleet_inventory.c LIBS gantry_fleet)
gantry_unit_test(test_image_locality SOURCES test_image_locality.c LIBS gantry_fleet)
# What a node reports of its images, and the image operations the leader asks of it.
gantry_unit_test(test_agent_inventory SOURCES test_agent_inventory.c LIBS gantry_agent)
# The output of gantry get images and gantry image pull.
gantry_unit_test(test_ctl_images SOURCES test_ctl_images.c LIBS gantry_ctl)
