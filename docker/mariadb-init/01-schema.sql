-- The example database: a few tables shaped like the Torrust tracker's MySQL schema, with
-- rows to find again after a restore. Run once by the MariaDB image on an empty volume, in
-- MARIADB_DATABASE (torrust_tracker).
CREATE TABLE torrents (
  id INT AUTO_INCREMENT PRIMARY KEY,
  info_hash CHAR(40) NOT NULL UNIQUE,
  completed INT NOT NULL DEFAULT 0
) ENGINE=InnoDB;

CREATE TABLE `keys` (
  id INT AUTO_INCREMENT PRIMARY KEY,
  `key` CHAR(32) NOT NULL UNIQUE,
  valid_until BIGINT
) ENGINE=InnoDB;

CREATE TABLE whitelist (
  id INT AUTO_INCREMENT PRIMARY KEY,
  info_hash CHAR(40) NOT NULL UNIQUE
) ENGINE=InnoDB;

INSERT INTO torrents (info_hash, completed)
WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 1000)
SELECT SHA1(x), x % 97 FROM n;

INSERT INTO `keys` (`key`, valid_until) VALUES (MD5('example'), UNIX_TIMESTAMP() + 86400);
INSERT INTO whitelist (info_hash) SELECT info_hash FROM torrents WHERE id <= 10;
