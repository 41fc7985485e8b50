-- A MariaDB data set that dumps and compresses like real business data, not sysbench's
-- filler: ids, md5 references, customers, times to the millisecond, money, statuses, JSON
-- documents, optional notes, multi-byte names, text bodies, and a few incompressible
-- attachments (blobs). bench/backup-mysql.ts replaces :rows (the number of orders) and runs
-- it with the mariadb client in the target database; 1,000,000 orders dump to ~380 MB of SQL
-- that zstd -3 makes ~3.4 times smaller. Needs MariaDB 10.10+ (RANDOM_BYTES, the SEQUENCE engine).
CREATE TABLE customers (
  id INT PRIMARY KEY,
  name VARCHAR(80) NOT NULL,
  email VARCHAR(120) NOT NULL,
  country CHAR(2) NOT NULL,
  created_at DATETIME NOT NULL,
  KEY (country)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
INSERT INTO customers
SELECT seq,
       CONCAT(ELT(1 + FLOOR(RAND() * 8), 'Zoë', 'José', 'Łukasz', 'Ayşe', 'Søren', '李', 'Nguyễn', 'Ana'), ' ',
              ELT(1 + FLOOR(RAND() * 6), 'Müller', 'García', 'Kowalski', 'Yılmaz', 'Dubois', 'Smith')),
       CONCAT('user', seq, '@', ELT(1 + FLOOR(RAND() * 4), 'example.com', 'mail.test', 'shop.example', 'corp.example')),
       ELT(1 + FLOOR(RAND() * 6), 'DE', 'FR', 'PL', 'TR', 'DK', 'VN'),
       NOW() - INTERVAL FLOOR(RAND() * 157680000) SECOND
FROM seq_1_to_100000;

CREATE TABLE orders (
  id INT PRIMARY KEY,
  ref CHAR(32) NOT NULL,
  customer_id INT NOT NULL,
  placed_at DATETIME(3) NOT NULL,
  amount DECIMAL(12,2) NOT NULL,
  status ENUM('created','paid','shipped','delivered','returned') NOT NULL,
  detail JSON NOT NULL,
  note TEXT NULL,
  KEY (customer_id),
  KEY (placed_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
INSERT INTO orders
SELECT seq,
       MD5(RAND()),
       1 + FLOOR(RAND() * 100000),
       NOW(3) - INTERVAL FLOOR(RAND() * 86400000000000) MICROSECOND,
       ROUND(RAND() * 1000, 2),
       1 + FLOOR(RAND() * 5),
       JSON_OBJECT('sku', CONCAT('SKU-', FLOOR(RAND() * 5000)), 'qty', FLOOR(1 + RAND() * 9),
                   'gift', RAND() < 0.1, 'coupon', IF(RAND() < 0.2, SUBSTR(MD5(seq), 1, 8), NULL)),
       IF(RAND() < 0.3, SUBSTR(MD5(seq * 7), 1, FLOOR(RAND() * 32)), NULL)
FROM seq_1_to_:rows;

CREATE TABLE events (
  id BIGINT PRIMARY KEY,
  order_id INT NOT NULL,
  kind VARCHAR(16) NOT NULL,
  at TIMESTAMP NOT NULL,
  body TEXT NOT NULL,
  KEY (order_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
INSERT INTO events
SELECT seq,
       1 + FLOOR(RAND() * :rows),
       ELT(1 + FLOOR(RAND() * 5), 'created', 'paid', 'shipped', 'delivered', 'returned'),
       NOW() - INTERVAL FLOOR(RAND() * 86400000) SECOND,
       REPEAT('lorem ipsum dolor sit amet ', 1 + FLOOR(RAND() * 3))
FROM seq_1_to_:rows
WHERE seq % 3 <> 0;

-- One order in 200 has an attachment: 1 to 8 KiB of random bytes, which no compressor shrinks.
CREATE TABLE attachments (
  id INT PRIMARY KEY,
  order_id INT NOT NULL,
  name VARCHAR(64) NOT NULL,
  mime VARCHAR(32) NOT NULL,
  data MEDIUMBLOB NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
INSERT INTO attachments
SELECT seq / 200, seq, CONCAT('scan-', seq, '.pdf'), 'application/pdf',
       CONCAT(RANDOM_BYTES(1024), IF(seq % 3 = 0, RANDOM_BYTES(1024), ''), IF(seq % 5 = 0, CONCAT(RANDOM_BYTES(1024), RANDOM_BYTES(1024), RANDOM_BYTES(1024), RANDOM_BYTES(1024), RANDOM_BYTES(1024), RANDOM_BYTES(1024)), ''))
FROM seq_1_to_:rows
WHERE seq % 200 = 0;

CREATE VIEW order_totals AS SELECT customer_id, COUNT(*) AS orders, SUM(amount) AS total FROM orders GROUP BY customer_id;
