-- Run once by the MariaDB image on first start: the binlog grants Turnout's capture needs.
GRANT SELECT, REPLICATION SLAVE, BINLOG MONITOR ON *.* TO 'turnout'@'%';
FLUSH PRIVILEGES;
